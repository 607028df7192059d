"""Pacing against the real local stack: the API emulator, the worker run by the local event source
(MaximumConcurrency 5: five worker processes sharing one bucket), DynamoDB Local and the NovaCal
sandbox, whose per-key limits are on for the paced accounts (local/seed.py)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from local.seed import PACED_NOVACAL_ACCOUNTS
from local.stack import TABLE_NAMES, Stack, start_stack
from relay.dal.pacing import PaceBucket, pace_key
from relay.providers.pacing import PACE_SAFETY_FRACTION
from tests.helpers import ZAPIER, future, new_key, stored_record

AUTH = {"authorization": f"Bearer {ZAPIER.api_key}"}
ASYNC = AUTH | {"prefer": "respond-async"}
FAST = "paced-fast"  # 600/min: the burst test takes seconds, not minutes
SLOW = "paced"  # 60/min, NovaCal's contract rate
BURST = 90
SETTLE_SECONDS = 120


@pytest.fixture(scope="module")
def pstack() -> Iterator[Stack]:
    with start_stack(api_port=0, workers=8, extra_env={"PROVIDER_READ_TIMEOUT_SECONDS": "5"}) as stack:
        yield stack


@pytest.fixture
def novacal(pstack: Stack) -> str:
    url = pstack.sandboxes["novacal"].url
    httpx.delete(f"{url}/_sandbox/calls").raise_for_status()
    # Clearing the limits resets their counters; the paced keys are limited again at their rates.
    httpx.delete(f"{url}/_sandbox/limits").raise_for_status()
    for secret in PACED_NOVACAL_ACCOUNTS.values():
        limit = {"token": secret["api_key"], "per_minute": secret["rate_per_minute"]}
        httpx.post(f"{url}/_sandbox/limits", json=limit).raise_for_status()
    return url


def _body(stack: Stack, account: str, minute: int) -> dict[str, Any]:
    booking = stack.sandboxes["novacal"].bookings[0]
    return {
        "provider": "novacal",
        "account": account,
        "booking_id": booking,
        "start": future(days=30 + minute),
        "timezone": "UTC",
    }


def _post(stack: Stack, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    assert stack.api is not None
    return httpx.post(
        f"{stack.api.url}/v1/reschedules",
        json=body,
        headers=headers | {"idempotency-key": new_key()},
        timeout=30,
    )


def _account_calls(url: str, account: str) -> list[float]:
    token = PACED_NOVACAL_ACCOUNTS[account]["api_key"]
    calls = httpx.get(f"{url}/_sandbox/calls").json()
    return sorted(
        c["at"]
        for c in calls
        if c["headers"].get("authorization") == f"Bearer {token}" and c["method"] == "PUT"
    )


def _most_in_window(times: list[float], window: float) -> int:
    return max((sum(1 for t in times[i:] if t < start + window) for i, start in enumerate(times)), default=0)


def _wait_all_succeeded(stack: Stack, ids: list[str]) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + SETTLE_SECONDS
    pending = set(ids)
    records: dict[str, dict[str, Any]] = {}
    while pending and time.monotonic() < deadline:
        for rid in list(pending):
            record = stored_record(stack, rid)
            if record.get("status") != "queued":
                records[rid] = record
                pending.discard(rid)
        time.sleep(0.5)
    assert not pending, f"{len(pending)} of {len(ids)} still queued"
    return records


def _limits_rejected(url: str) -> int:
    rejected: int = httpx.get(f"{url}/_sandbox/limits").json()["rejected"]
    return rejected


def test_a_burst_of_async_requests_is_delivered_at_the_accounts_rate_by_several_workers(
    pstack: Stack, novacal: str
) -> None:
    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(lambda i: _post(pstack, _body(pstack, FAST, i), ASYNC), range(BURST)))
    assert [a.status_code for a in answers] == [202] * BURST
    records = _wait_all_succeeded(pstack, [a.json()["reschedule_id"] for a in answers])
    assert {r["status"] for r in records.values()} == {"succeeded"}
    # Deferrals are not attempts: every request took exactly one provider call.
    assert {r["attempts"] for r in records.values()} == {"1"}
    times = _account_calls(novacal, FAST)
    assert len(times) == BURST
    assert _limits_rejected(novacal) == 0
    rate = PACED_NOVACAL_ACCOUNTS[FAST]["rate_per_minute"]
    # The rolling-window guarantee, scaled to the burst's length: 6 s holds at most rate/10 calls.
    assert _most_in_window(times, 6.0) <= rate // 10
    interval = 60 / rate
    # Slots are an interval apart; a call may land late by the machine's scheduling jitter, no more.
    assert _most_in_window(times, 1.0) <= rate // 60 + 2
    # Never faster than the rate (how close to it the burst gets is `make bench`'s number).
    ideal = (BURST - 1) * interval * (1 + PACE_SAFETY_FRACTION)
    assert times[-1] - times[0] >= ideal * 0.95


def test_the_contract_rate_of_60_a_minute_spaces_calls_a_second_apart(pstack: Stack, novacal: str) -> None:
    count = 8
    answers = [_post(pstack, _body(pstack, SLOW, 300 + i), ASYNC) for i in range(count)]
    assert [a.status_code for a in answers] == [202] * count
    _wait_all_succeeded(pstack, [a.json()["reschedule_id"] for a in answers])
    times = _account_calls(novacal, SLOW)
    assert len(times) == count
    assert min(b - a for a, b in itertools.pairwise(times)) >= 0.9
    assert _limits_rejected(novacal) == 0


def _fill_bucket(stack: Stack, account: str, seconds: float) -> None:
    """Make the account's bucket busy for `seconds` (as if other containers had taken the slots)."""
    stack.client("dynamodb").put_item(
        TableName=TABLE_NAMES["IdempotencyTable"],
        Item={
            "id": {"S": pace_key("novacal", account)},
            "tat": {"N": str(int((time.time() + seconds) * 1000))},
            "expiration": {"N": str(int(time.time()) + 3600)},
        },
    )


def test_a_sync_request_without_a_slot_answers_429_with_the_buckets_retry_after(
    pstack: Stack, novacal: str
) -> None:
    _fill_bucket(pstack, SLOW, 30)
    answer = _post(pstack, _body(pstack, SLOW, 400), AUTH)
    assert answer.status_code == 429, answer.text
    assert answer.json()["code"] == "paced"
    assert 25 <= int(answer.headers["retry-after"]) <= 31
    assert _account_calls(novacal, SLOW) == []


def test_a_queued_request_without_a_slot_is_deferred_not_failed(pstack: Stack, novacal: str) -> None:
    _fill_bucket(pstack, SLOW, 25)  # longer than the worker's in-process wait (20 s)
    answer = _post(pstack, _body(pstack, SLOW, 401), ASYNC)
    assert answer.status_code == 202
    rid = answer.json()["reschedule_id"]
    time.sleep(4)
    waiting = stored_record(pstack, rid)
    assert waiting["status"] == "queued"
    assert waiting.get("attempts", "0") == "0"
    assert "last_error" not in waiting
    record = _wait_all_succeeded(pstack, [rid])[rid]
    assert record["status"] == "succeeded"
    assert record["attempts"] == "1"
    assert len(_account_calls(novacal, SLOW)) == 1


def test_replays_take_no_token(pstack: Stack, novacal: str) -> None:
    key = new_key()
    body = _body(pstack, FAST, 500)
    assert pstack.api is not None
    first = httpx.post(f"{pstack.api.url}/v1/reschedules", json=body, headers=AUTH | {"idempotency-key": key})
    assert first.status_code == 200, first.text
    _fill_bucket(pstack, FAST, 30)  # a replay would be refused if it took a token
    again = httpx.post(f"{pstack.api.url}/v1/reschedules", json=body, headers=AUTH | {"idempotency-key": key})
    assert again.status_code == 200
    assert again.json()["replayed"] is True


def test_two_buckets_in_two_containers_never_grant_closer_than_the_interval(pstack: Stack) -> None:
    client = pstack.client("dynamodb")
    a, b = (PaceBucket(client, TABLE_NAMES["IdempotencyTable"]) for _ in range(2))
    key = pace_key("novacal", f"unit-{new_key()}")
    now = int(time.time() * 1000)
    slots = []
    for step in range(40):
        bucket = a if step % 3 else b
        take = bucket.take(key, interval_ms=100, now_ms=now + step * 30, horizon_ms=now + step * 30 + 500)
        assert take.calls <= 2
        if take.slot_ms is not None:
            slots.append(take.slot_ms)
        else:
            assert take.next_free_ms > now + step * 30 + 500
    assert len(slots) == len(set(slots))
    slots.sort()
    assert min(y - x for x, y in itertools.pairwise(slots)) >= 100
