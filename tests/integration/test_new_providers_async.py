"""Cal.com and Acuity through the queue door: `Prefer: respond-async` through the API emulator, the
session stack's worker (the local event source running worker.py), the sandboxes, DynamoDB Local."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from local.sandbox.bookings import ACUITY_CANCELED_ID
from local.stack import Stack
from tests.helpers import ZAPIER, Sandbox, new_key, stored_record

ASYNC = {"authorization": f"Bearer {ZAPIER.api_key}", "prefer": "respond-async"}
# The session's worker long-polls: a queued request is delivered within a poll or two.
DELIVERED_WITHIN_SECONDS = 60


def _utc_slot(days: int, hour: int) -> str:
    moment = (datetime.now(UTC) + timedelta(days=days)).replace(hour=hour, minute=0, second=0, microsecond=0)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _queue(stack: Stack, body: dict[str, Any]) -> str:
    assert stack.api is not None
    answer = httpx.post(
        f"{stack.api.url}/v1/reschedules",
        json=body,
        headers=ASYNC | {"idempotency-key": new_key()},
        timeout=30,
    )
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "queued"
    reschedule_id: str = answer.json()["reschedule_id"]
    return reschedule_id


def _finished(stack: Stack, reschedule_id: str) -> dict[str, Any]:
    """The record once the worker has finished with it (its public view, as the source reads it)."""
    assert stack.api is not None
    deadline = time.monotonic() + DELIVERED_WITHIN_SECONDS
    while True:
        record: dict[str, Any] = httpx.get(
            f"{stack.api.url}/v1/reschedules/{reschedule_id}", headers=ASYNC, timeout=30
        ).json()
        if record["status"] != "queued" or time.monotonic() > deadline:
            return record
        time.sleep(0.3)


def _posts(box: Sandbox) -> list[dict[str, Any]]:
    return [c for c in box.calls() if c["method"] == "POST"]


def test_calcom_through_the_queue_records_the_new_uid_and_follows_it(
    stack: Stack, sandboxes: dict[str, Sandbox]
) -> None:
    box = sandboxes["calcom"]
    uid = box.bookings[4]
    first = _finished(
        stack, _queue(stack, {"provider": "calcom", "booking_id": uid, "start": _utc_slot(60, 15)})
    )
    assert first["status"] == "succeeded", first
    assert first["attempts"] == 1
    new_uid = first["new_booking_id"]
    assert new_uid
    assert new_uid != uid
    assert stored_record(stack, first["reschedule_id"])["new_booking_id"] == new_uid
    # The zap still holds the original uid: the worker moves the latest one.
    second = _finished(
        stack, _queue(stack, {"provider": "calcom", "booking_id": uid, "start": _utc_slot(61, 9)})
    )
    assert second["status"] == "succeeded", second
    assert second["booking_id"] == uid
    assert [c["path"] for c in _posts(box)] == [
        f"/v2/bookings/{uid}/reschedule",
        f"/v2/bookings/{new_uid}/reschedule",
    ]
    assert all(c["headers"]["cal-api-version"] == "2024-08-13" for c in _posts(box))


def test_calcom_dropped_after_commit_in_the_worker_is_one_success_and_one_move(
    stack: Stack, sandboxes: dict[str, Sandbox]
) -> None:
    box = sandboxes["calcom"]
    uid = box.bookings[3]
    box.fault(drop_connection=True, after_commit=True, times=1)
    start = _utc_slot(62, 13)
    record = _finished(stack, _queue(stack, {"provider": "calcom", "booking_id": uid, "start": start}))
    assert record["status"] == "succeeded", record
    bookings: list[dict[str, Any]] = httpx.get(f"{box.url}/_sandbox/bookings").json()
    moved = [
        b for b in bookings if b["start"].startswith(start.removesuffix("Z")) and b["status"] != "cancelled"
    ]
    assert [b["uid"] for b in moved] == [record["new_booking_id"]]  # exactly one booking at the new time
    assert len(_posts(box)) == 1  # the dropped one only: reading the old uid and its successor settled it


def test_acuity_through_the_queue_sends_basic_auth_and_the_zones_offset(
    stack: Stack, sandboxes: dict[str, Sandbox]
) -> None:
    box = sandboxes["acuity"]
    appointment = box.bookings[3]
    year = datetime.now(UTC).year + 1
    # January: New York is on standard time, so the offset is -0500.
    body = {
        "provider": "acuity",
        "booking_id": appointment,
        "start": f"{year}-01-20T10:00:00",
        "timezone": "America/New_York",
    }
    record = _finished(stack, _queue(stack, body))
    assert record["status"] == "succeeded", record
    (call,) = box.calls()
    assert (call["method"], call["path"]) == ("PUT", f"/api/v1/appointments/{appointment}/reschedule")
    assert (
        call["headers"]["authorization"]
        == "Basic " + base64.b64encode(b"10001:sandbox-acuity-key-0001").decode()
    )
    assert call["body"] == {"datetime": f"{year}-01-20T10:00:00-0500", "timezone": "America/New_York"}
    assert not {"firstName", "lastName", "email", "phone"} & set(record["provider_result"])


def test_acuity_refusal_through_the_queue_fails_at_once_with_its_reason(
    stack: Stack, sandboxes: dict[str, Sandbox]
) -> None:
    record = _finished(
        stack,
        _queue(stack, {"provider": "acuity", "booking_id": ACUITY_CANCELED_ID, "start": _utc_slot(63, 15)}),
    )
    assert record["status"] == "failed", record
    assert (record["reason"], record["http_status"], record["provider_status"]) == (
        "provider_rejected",
        422,
        400,
    )
    assert record["problems"] == [
        {
            "field": "booking_id",
            "message": "Canceled appointments cannot be rescheduled.",
            "code": "reschedule_canceled",
        }
    ]
    assert record["attempts"] == 1  # not retried: the provider's answer is final
    assert len(sandboxes["acuity"].calls()) == 1
