"""Unknown outcomes settled by reading, against the sandboxes' real answers and the real stores.

A lost answer, a slow commit raced by a retry (Cal.com's raw 409), Acuity's lost answer, and
Cal.com's throttler (429 with no Retry-After, its reset header in seconds).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from local.sandbox.bookings import CALCOM_SLOW_COMMIT_UID, CALCOM_THROTTLED_UID
from local.seed import PROVIDER_SECRETS
from tests.helpers import (
    TEST_PROVIDER_READ_TIMEOUT_SECONDS,
    Answer,
    Invoker,
    Sandbox,
    lambda_context,
    new_key,
)

# Longer than the relay's provider read timeout in tests: the first call times out mid-commit.
SLOW_COMMIT_MS = int(float(TEST_PROVIDER_READ_TIMEOUT_SECONDS) * 1000) + 700


def _utc_slot(days: int, hour: int) -> str:
    moment = (datetime.now(UTC) + timedelta(days=days)).replace(hour=hour, minute=0, second=0, microsecond=0)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _move(invoke: Invoker, body: dict[str, Any]) -> Any:
    return invoke("POST", "/v1/reschedules", body=body, headers={"idempotency-key": new_key()})


def _bookings(box: Sandbox) -> list[dict[str, Any]]:
    bookings: list[dict[str, Any]] = httpx.get(f"{box.url}/_sandbox/bookings").json()
    return bookings


def _moves(box: Sandbox) -> list[dict[str, Any]]:
    return [c for c in box.calls() if c["method"] in ("POST", "PUT")]


def test_calcom_slow_commit_raced_by_a_retry_is_one_move_reported_as_success(
    invoke: Invoker, sandboxes: dict[str, Sandbox]
) -> None:
    # Given a Cal.com booking whose move commits slower than the relay waits for an answer
    box = sandboxes["calcom"]
    uid = CALCOM_SLOW_COMMIT_UID
    box.fault(commit_delay_ms=SLOW_COMMIT_MS)
    start = _utc_slot(60, 15)

    # When it is moved
    answer = _move(invoke, {"provider": "calcom", "booking_id": uid, "start": start})

    # Then the caller hears success with the one new uid, and Cal.com holds exactly one move
    assert answer.status == 200, answer.body
    moved = [b for b in _bookings(box) if b.get("rescheduledFromUid") == uid]
    assert [b["uid"] for b in moved] == [answer.body["new_booking_id"]]
    assert moved[0]["start"] == start.replace("Z", ".000Z")
    # and every POST after the first one met the commit in flight (409) or the spent uid (400)
    assert len(_moves(box)) <= 2


def test_acuity_lost_answer_is_one_move_and_a_success(invoke: Invoker, sandboxes: dict[str, Sandbox]) -> None:
    box = sandboxes["acuity"]
    appointment = box.bookings[4]
    box.fault(drop_connection=True, after_commit=True, times=1)
    answer = _move(invoke, {"provider": "acuity", "booking_id": appointment, "start": _utc_slot(61, 14)})
    assert answer.status == 200, answer.body
    assert len(_moves(box)) == 1  # the PUT was not sent blind again: the read showed the move
    assert [c["method"] for c in box.calls()] == ["PUT", "GET"]
    assert answer.body["provider_result"]["id"] == int(appointment)


# Cal.com blocks a key for 60 s; the sandbox's block is shortened so the shared stack is not held
# long, and these requests get a Lambda with less time left than the block (so no wait fits).
BLOCK_SECONDS = 8
SHORT_LAMBDA_SECONDS = 6


class ShortInvoker(Invoker):
    def invoke(self, event: dict[str, Any]) -> Answer:
        result = self.module.lambda_handler(event, lambda_context(timeout_seconds=SHORT_LAMBDA_SECONDS))
        body = json.loads(result["body"]) if result.get("body") else None
        return Answer(result["statusCode"], {k.lower(): v for k, v in result["headers"].items()}, body)


@pytest.fixture
def calcom_limited(sandboxes: dict[str, Sandbox]) -> Any:
    box = sandboxes["calcom"]
    key = PROVIDER_SECRETS["calcom"]["api_key"]
    limit = {"token": key, "per_minute": 2, "block_seconds": BLOCK_SECONDS}
    httpx.post(f"{box.url}/_sandbox/limits", json=limit).raise_for_status()
    yield box
    httpx.delete(f"{box.url}/_sandbox/limits").raise_for_status()
    time.sleep(BLOCK_SECONDS)  # the relay holds the account until the block ends: let it end


def test_calcom_429_block_tells_the_caller_when_to_come_back_and_sends_nothing_inside_it(
    invoke: Invoker, calcom_limited: Sandbox
) -> None:
    invoke = ShortInvoker(invoke.module)
    # Given the key's window used up (a read and a move: two calls of two)
    box = calcom_limited
    first = _move(
        invoke, {"provider": "calcom", "booking_id": CALCOM_THROTTLED_UID, "start": _utc_slot(62, 15)}
    )
    assert first.status == 200, first.body
    box.reset()

    # When the next request comes within the window
    answer = _move(
        invoke, {"provider": "calcom", "booking_id": first.body["new_booking_id"], "start": _utc_slot(63, 15)}
    )

    # Then it is a 429 whose Retry-After is Cal.com's block, from one call and no retry inside it
    assert answer.status == 429, answer.body
    assert answer.body["code"] == "provider_rate_limited"
    retry_after = int(answer.headers["retry-after"])
    assert BLOCK_SECONDS - 1 <= retry_after <= BLOCK_SECONDS
    assert answer.body["retry_after"] == retry_after
    assert len(box.calls()) == 1

    # and a request inside the block is not sent at all: the account's bucket holds until the reset
    box.reset()
    later = _move(
        invoke, {"provider": "calcom", "booking_id": first.body["new_booking_id"], "start": _utc_slot(64, 15)}
    )
    assert later.status == 429, later.body
    assert 1 <= int(later.headers["retry-after"]) <= BLOCK_SECONDS
    assert box.calls() == []
