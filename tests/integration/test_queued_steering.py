"""Queued work you can steer, on the local stack with the real queue and worker (its own poller,
short timeouts, as tests/integration/test_delivery.py): the provider calls and the recovery time
under a 60 s outage, cancels at random moments of an outage, expiry with a short lead, and
revocation with queued work. The figures are printed (`-s`) and asserted."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from local.event_source import EventSourcePoller
from local.stack import REGION, TABLE_NAMES, Stack, start_stack
from tests.helpers import ZAPIER, Sandbox, future, new_key, start_delivery_worker, stored_record

# The delivery lead here: short, so a move can be queued and then expire within a test.
LEAD_SECONDS = 20
WORKER_TIMEOUT_SECONDS = 20
VISIBILITY_TIMEOUT_SECONDS = 30
REGISTRY_MAX_AGE_SECONDS = 1
OUTAGE_SECONDS = 60
# The targets: 5 moves queued during a 60 s outage cost at most 15 provider calls, and all
# are delivered within 30 s of its end.
TARGET_CALLS = 15
TARGET_RECOVERY_SECONDS = 30
AUTH = {"authorization": f"Bearer {ZAPIER.api_key}"}
ASYNC = AUTH | {"prefer": "respond-async"}
FINAL = ("succeeded", "failed", "cancelled")


@pytest.fixture(scope="module")
def qstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    no_worker = tmp_path_factory.mktemp("no-worker")
    with start_stack(
        api_port=0,
        workers=4,
        worker_code_dir=no_worker,
        extra_env={
            "PROVIDER_READ_TIMEOUT_SECONDS": "5",
            "DELIVERY_MIN_LEAD_SECONDS": str(LEAD_SECONDS),
            "REGISTRY_MAX_AGE_SECONDS": str(REGISTRY_MAX_AGE_SECONDS),
        },
        queue_overrides={"DeliveryQueue": {"VisibilityTimeout": str(VISIBILITY_TIMEOUT_SECONDS)}},
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def worker(qstack: Stack) -> Iterator[EventSourcePoller]:
    poller = start_delivery_worker(qstack, function_timeout_s=WORKER_TIMEOUT_SECONDS)
    yield poller
    poller.stop()


@pytest.fixture
def boxes(qstack: Stack, worker: EventSourcePoller) -> Iterator[dict[str, Sandbox]]:
    found = {name: Sandbox(sb.url, list(sb.bookings)) for name, sb in qstack.sandboxes.items()}
    for box in found.values():
        box.reset()
        httpx.delete(f"{box.url}/_sandbox/outage").raise_for_status()
    _close_circuits(qstack)
    yield found
    for box in found.values():
        httpx.delete(f"{box.url}/_sandbox/outage").raise_for_status()


def _close_circuits(stack: Stack) -> None:
    """No circuit left open by an earlier test (each test starts with its providers up)."""
    dynamodb = stack.client("dynamodb")
    for provider in stack.sandboxes:
        dynamodb.delete_item(
            TableName=TABLE_NAMES["IdempotencyTable"], Key={"id": {"S": f"circuit#{provider}#default"}}
        )


def _outage(box: Sandbox, seconds: float, status: int = 503) -> float:
    httpx.post(f"{box.url}/_sandbox/outage", json={"seconds": seconds, "status": status}).raise_for_status()
    return time.time() + seconds


def _post(stack: Stack, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    assert stack.api is not None
    return httpx.post(
        f"{stack.api.url}/v1/reschedules",
        json=body,
        headers=headers | {"idempotency-key": new_key()},
        timeout=30,
    )


def _get(stack: Stack, reschedule_id: str, headers: dict[str, str] = AUTH) -> dict[str, Any]:
    assert stack.api is not None
    answer = httpx.get(f"{stack.api.url}/v1/reschedules/{reschedule_id}", headers=headers, timeout=30)
    record: dict[str, Any] = answer.json()
    return record


def _delete(stack: Stack, reschedule_id: str) -> httpx.Response:
    assert stack.api is not None
    return httpx.delete(f"{stack.api.url}/v1/reschedules/{reschedule_id}", headers=AUTH, timeout=30)


def _until(check: Callable[[], Any], seconds: float, what: str) -> Any:
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"{what} not reached within {seconds} s")


def _all_final(
    stack: Stack, ids: list[str], seconds: float, headers: dict[str, str] = AUTH
) -> list[dict[str, Any]]:
    def done() -> list[dict[str, Any]] | None:
        records = [_get(stack, i, headers) for i in ids]
        return records if all(r["status"] in FINAL for r in records) else None

    found: list[dict[str, Any]] = _until(done, seconds, "every request's final state")
    return found


def _instant(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def _calls_for(box: Sandbox, booking: str) -> list[dict[str, Any]]:
    return [c for c in box.calls() if booking in c["path"]]


# -- outages are probed, not hammered --------------------------------------------------------------


def test_five_moves_queued_during_a_60_s_outage_cost_at_most_15_calls_and_arrive_within_30_s_of_its_end(
    qstack: Stack, boxes: dict[str, Sandbox]
) -> None:
    # Given an iClosed outage of 60 s, and 5 moves queued at its start
    box = boxes["iclosed"]
    ends = _outage(box, OUTAGE_SECONDS)
    ids = []
    for n, booking in enumerate(box.bookings[:5]):
        answer = _post(
            qstack,
            {"provider": "iclosed", "booking_id": booking, "start": future(days=60 + n), "timezone": "UTC"},
            ASYNC,
        )
        assert answer.status_code == 202, answer.text
        ids.append(answer.json()["reschedule_id"])

    # When the provider comes back by itself
    records = _all_final(qstack, ids, OUTAGE_SECONDS + TARGET_RECOVERY_SECONDS + 15)

    # Then every one is delivered once, soon after the end, and the outage cost few calls
    assert [r["status"] for r in records] == ["succeeded"] * 5
    calls = box.calls()
    during = [c for c in calls if c["at"] < ends]
    recovery = max(_instant(r["finished_at"]) for r in records) - ends
    print(  # noqa: T201 - the figures the issue asks for
        f"\noutage {OUTAGE_SECONDS} s, 5 queued moves: {len(calls)} provider calls "
        f"({len(during)} during the outage, {len(calls) - len(during)} after); "
        f"last delivery {recovery:.1f} s after the outage ended; "
        f"attempts per move {[r['attempts'] for r in records]}"
    )
    assert len(calls) <= TARGET_CALLS
    assert len(calls) - len(during) == 5  # after the end: exactly one success per move
    assert recovery <= TARGET_RECOVERY_SECONDS


# -- cancel wins -----------------------------------------------------------------------------------


def test_cancels_at_random_moments_of_an_outage_win_and_no_call_starts_after_one_is_answered(
    qstack: Stack, boxes: dict[str, Sandbox]
) -> None:
    # Given a NovaCal outage of 15 s and one queued move per booking
    box = boxes["novacal"]
    rng = random.Random(os.environ.get("PYTEST_SEED", "22"))
    ends = _outage(box, 15)
    queued = []
    for n, booking in enumerate(box.bookings):
        answer = _post(
            qstack,
            {
                "provider": "novacal",
                "booking_id": booking,
                "start": future(days=70 + n) + "Z",
                "timezone": "UTC",
            },
            ASYNC,
        )
        assert answer.status_code == 202, answer.text
        queued.append((booking, answer.json()["reschedule_id"]))

    # When each is cancelled at a random moment of the outage (and one just as it ends)
    moments = [*sorted(rng.uniform(0.2, 14.0) for _ in queued[:-1]), 15.2]
    started = time.time()
    answers = []
    for (booking, reschedule_id), moment in zip(queued, moments, strict=True):
        time.sleep(max(0.0, started + moment - time.time()))
        answer = _delete(qstack, reschedule_id)
        answers.append((booking, reschedule_id, answer, time.time()))

    # Then every cancel is accepted: cancelled, or (a call under way moved it) too late
    for booking, reschedule_id, answer, acknowledged in answers:
        assert answer.status_code in (200, 202, 409), answer.text
        if answer.status_code == 409:
            assert answer.json()["code"] == "cancel_too_late", answer.text
        final = _all_final(qstack, [reschedule_id], 30)[0]
        if answer.status_code == 200:
            assert final["status"] == "cancelled"
            # no provider call for it started after the cancel was answered
            assert [c for c in _calls_for(box, booking) if c["at"] > acknowledged] == []
        else:
            assert final["status"] in ("cancelled", "succeeded")
    time.sleep(max(0.0, ends - time.time()) + 5)  # the provider is back: nothing cancelled moves now
    cancelled = [b for b, i, a, _ in answers if _get(qstack, i)["status"] == "cancelled"]
    late = [c for b in cancelled for c in _calls_for(box, b) if c["at"] > ends]
    print(  # noqa: T201
        f"\ncancels at {[round(m, 1) for m in moments]} s of a 15 s outage: answers "
        f"{[a.status_code for _, _, a, _ in answers]}; "
        f"calls after the outage for cancelled moves: {len(late)}"
    )
    assert late == []


def test_a_cancel_while_a_call_is_under_way_is_noted_and_its_outcome_decides(
    qstack: Stack, boxes: dict[str, Sandbox]
) -> None:
    # Given a delivery whose provider call hangs 3 s and then moves the booking
    box = boxes["novacal"]
    booking = box.bookings[0]
    box.fault(delay_ms=3000, times=1)
    answer = _post(
        qstack,
        {"provider": "novacal", "booking_id": booking, "start": future(days=80) + "Z", "timezone": "UTC"},
        ASYNC,
    )
    reschedule_id = answer.json()["reschedule_id"]
    _until(lambda: _calls_for(box, booking), 15, "the delivery's call")
    # When the source cancels while that call is under way
    cancel = _delete(qstack, reschedule_id)
    # Then the cancel came too late: the booking moved, and the record says so
    assert cancel.status_code == 409, cancel.text
    assert (cancel.json()["code"], cancel.json()["reschedule_id"]) == ("cancel_too_late", reschedule_id)
    assert _get(qstack, reschedule_id)["status"] == "succeeded"
    assert len(_calls_for(box, booking)) == 1


# -- moves expire with their slot ------------------------------------------------------------------


def test_expiry_with_a_short_lead(qstack: Stack, boxes: dict[str, Sandbox]) -> None:
    box = boxes["acuity"] if "acuity" in boxes else boxes["novacal"]
    provider = "acuity" if "acuity" in boxes else "novacal"
    now = datetime.now(UTC)
    # An async request whose start is already inside the lead is refused, naming start
    soon = (now + timedelta(seconds=LEAD_SECONDS - 5)).isoformat(timespec="seconds")
    refused = _post(qstack, {"provider": provider, "booking_id": box.bookings[1], "start": soon}, ASYNC)
    assert refused.status_code == 422, refused.text
    assert [(e["field"], e["code"]) for e in refused.json()["errors"]] == [("start", "inside_lead")]

    # A move queued 10 s before its last moment, during an outage that outlasts it, is never delivered
    ends = _outage(box, 40)
    start = now + timedelta(seconds=LEAD_SECONDS + 10)
    queued = _post(
        qstack,
        {"provider": provider, "booking_id": box.bookings[1], "start": start.isoformat(timespec="seconds")},
        ASYNC,
    )
    assert queued.status_code == 202, queued.text
    record = _all_final(qstack, [queued.json()["reschedule_id"]], 40)[0]
    last_moment = (start - timedelta(seconds=LEAD_SECONDS)).timestamp()
    late_by = _instant(record["finished_at"]) - last_moment
    print(f"\nexpired {late_by:.1f} s after its last moment (lead {LEAD_SECONDS} s)")  # noqa: T201
    assert (record["status"], record["reason"]) == ("failed", "start_passed")
    assert -1 <= late_by <= 5
    assert [c for c in box.calls() if c["at"] > last_moment] == []
    httpx.delete(f"{box.url}/_sandbox/outage").raise_for_status()
    assert time.time() < ends


# -- revocation reaches the queue ------------------------------------------------------------------


def _accepted(stack: Stack, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    """A new source's request, once its key works (the registry is re-read within seconds)."""

    def accepted() -> httpx.Response | None:
        answer = _post(stack, body, headers)
        return answer if answer.status_code == 202 else None

    found: httpx.Response = _until(accepted, 20, "the new key accepted")
    return found


def _relayctl(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | stack.describe()["aws"]["env"]
    return subprocess.run(  # noqa: S603 - our own tool, arguments from the test
        [sys.executable, "-m", "relayctl", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_revocation_with_queued_work_stops_it_and_says_how_many(
    qstack: Stack, boxes: dict[str, Sandbox]
) -> None:
    # Given a new source with 3 moves queued while NovaCal is down
    box = boxes["novacal"]
    added = _relayctl(
        qstack, "sources", "add", "revoke-me", "--kind", "api_key", "--allow", "novacal:default", "--json"
    )
    assert added.returncode == 0, added.stderr
    key = json.loads(added.stdout)["api_key"]
    headers = {"authorization": f"Bearer {key}", "prefer": "respond-async"}
    ends = _outage(box, 30)
    ids = []
    for n, booking in enumerate(box.bookings[2:5]):
        answer = _accepted(
            qstack,
            {"provider": "novacal", "booking_id": booking, "start": future(days=90 + n) + "Z"},
            headers,
        )
        ids.append(answer.json()["reschedule_id"])

    # When it is revoked
    revoked = _relayctl(qstack, "sources", "revoke", "revoke-me", "--json")

    # Then the tool says it stopped all three, and none is ever delivered
    assert revoked.returncode == 0, revoked.stderr
    assert json.loads(revoked.stdout)["queued_stopped"] == 3
    httpx.delete(f"{box.url}/_sandbox/outage").raise_for_status()
    stopped_at = time.time()
    records = [stored_record(qstack, i) for i in ids]
    assert [(r["status"], r["reason"]) for r in records] == [("failed", "source_revoked")] * 3
    time.sleep(8)  # a delivery would have come by now (the circuit's probe interval is 10 s at most)
    assert [c for b in box.bookings[2:5] for c in _calls_for(box, b) if c["at"] > stopped_at] == []
    assert ends > stopped_at


def test_a_move_to_an_account_the_source_lost_is_failed_at_delivery(
    qstack: Stack, boxes: dict[str, Sandbox]
) -> None:
    # Given a source whose move is queued while NovaCal is down
    box = boxes["novacal"]
    added = _relayctl(
        qstack, "sources", "add", "narrow-me", "--kind", "api_key", "--allow", "novacal:default", "--json"
    )
    key = json.loads(added.stdout)["api_key"]
    headers = {"authorization": f"Bearer {key}", "prefer": "respond-async"}
    _outage(box, 8)
    answer = _accepted(
        qstack,
        {"provider": "novacal", "booking_id": box.bookings[1], "start": future(days=95) + "Z"},
        headers,
    )
    # When it loses the account (narrowed to another one) before the provider is back
    narrowed = _relayctl(qstack, "sources", "set", "narrow-me", "--allow", "novacal:paced")
    assert narrowed.returncode == 0, narrowed.stderr
    # Then the worker refuses it at its next delivery
    record = _until(
        lambda: (r := stored_record(qstack, answer.json()["reschedule_id"]))["status"] != "queued" and r,
        40,
        "its end",
    )
    assert (record["status"], record["reason"]) == ("failed", "account_not_allowed")
    assert [c for c in _calls_for(box, box.bookings[1]) if c["at"] > _instant(record["finished_at"])] == []


# -- the guard's cost on the happy path ------------------------------------------------------------


def test_the_guard_costs_one_conditional_write_per_provider_call(qstack: Stack) -> None:
    from relay.dal.clients import new_client  # noqa: PLC0415 - importable once conftest set the path
    from relay.dal.ledger import Ledger  # noqa: PLC0415
    from relay.dal.records import RecordStore  # noqa: PLC0415
    from relay.ports import LockNotHeld  # noqa: PLC0415

    options = {"region_name": REGION, "aws_access_key_id": "sandbox", "aws_secret_access_key": "sandbox"}
    dynamodb = new_client("dynamodb", endpoint_url=qstack.dynamodb.endpoint, **options)
    records = RecordStore(dynamodb, TABLE_NAMES["ReschedulesTable"])
    ledger = Ledger(dynamodb, TABLE_NAMES["IdempotencyTable"], records)
    reschedule_id = str(uuid.uuid4())
    records.put(
        {"reschedule_id": reschedule_id, "source": "zapier-demo", "status": "queued", "attempted_at": "x"}
    )
    now = int(time.time())
    ledger.lock_delivery(reschedule_id, "token-1", now=now, until=now + 60)
    rounds = 50
    guard, read = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        ledger.guard_send(reschedule_id, "token-1")
        guard.append(time.perf_counter() - started)
        started = time.perf_counter()
        ledger.read_record(reschedule_id)
        read.append(time.perf_counter() - started)
    guard.sort()
    read.sort()
    print(  # noqa: T201
        f"\nguard (conditional UpdateItem) median {guard[rounds // 2] * 1000:.1f} ms, "
        f"p90 {guard[rounds * 9 // 10] * 1000:.1f} ms; "
        f"a consistent GetItem median {read[rounds // 2] * 1000:.1f} ms "
        "(DynamoDB Local, this machine)"
    )
    # Another delivery's token is refused: the guard is a condition, not a formality
    with pytest.raises(LockNotHeld):
        ledger.guard_send(reschedule_id, "token-2")
