"""Cal.com and Acuity through the HTTP door, against their sandboxes and the real stores."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

from local.sandbox.bookings import ACUITY_CANCELED_ID, CALCOM_CANCELLED_UID
from local.secrets_emulator import put_secret_json
from local.stack import Stack
from relay.command import RescheduleCommand
from relay.composition import build
from relay.deadline import Deadline
from relay.errors import RelayError
from relay.settings import settings_from
from tests.helpers import Invoker, Sandbox, new_key, stored_record


def _utc_slot(days: int, hour: int) -> str:
    moment = (datetime.now(UTC) + timedelta(days=days)).replace(hour=hour, minute=0, second=0, microsecond=0)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _move(invoke: Invoker, body: dict[str, Any]) -> Any:
    return invoke("POST", "/v1/reschedules", body=body, headers={"idempotency-key": new_key()})


def _posts(box: Sandbox) -> list[dict[str, Any]]:
    return [c for c in box.calls() if c["method"] == "POST"]


def test_calcom_gets_the_contract_request_and_the_new_uid_is_answered_and_recorded(
    invoke: Invoker, sandboxes: dict[str, Sandbox], stack: Stack
) -> None:
    box = sandboxes["calcom"]
    uid = box.bookings[0]
    start = _utc_slot(50, 15)
    answer = _move(
        invoke,
        {
            "provider": "calcom",
            "booking_id": uid,
            "start": start,
            "reason": "Conflict",
            "rescheduledBy": "sandbox-host@example.test",
        },
    )
    assert answer.status == 200, answer.body
    read, post = box.calls()
    assert (read["method"], read["path"]) == ("GET", f"/v2/bookings/{uid}")
    assert (post["method"], post["path"]) == ("POST", f"/v2/bookings/{uid}/reschedule")
    assert post["headers"]["cal-api-version"] == "2024-08-13"
    assert post["headers"]["authorization"] == "Bearer cal_sandbox_key_0001"
    assert post["body"] == {
        "start": start,
        "reschedulingReason": "Conflict",
        "rescheduledBy": "sandbox-host@example.test",
    }
    new_uid = answer.body["new_booking_id"]
    assert answer.body["booking_id"] == uid
    assert new_uid
    assert new_uid != uid
    assert answer.body["provider_result"]["uid"] == new_uid
    assert "attendees" not in answer.body["provider_result"]
    record = stored_record(stack, answer.body["reschedule_id"])
    assert (record["booking_id"], record["new_booking_id"]) == (uid, new_uid)
    assert "example.test" not in str(record)


def test_calcom_second_move_of_the_original_uid_goes_to_the_latest_uid(
    invoke: Invoker, sandboxes: dict[str, Sandbox]
) -> None:
    box = sandboxes["calcom"]
    uid = box.bookings[1]
    first = _move(invoke, {"provider": "calcom", "booking_id": uid, "start": _utc_slot(51, 14)})
    assert first.status == 200, first.body
    second = _move(invoke, {"provider": "calcom", "booking_id": uid, "start": _utc_slot(52, 16)})
    assert second.status == 200, second.body
    assert second.body["booking_id"] == uid
    assert second.body["provider_result"]["rescheduledFromUid"] == first.body["new_booking_id"]
    paths = [c["path"] for c in _posts(box)]
    assert paths == [
        f"/v2/bookings/{uid}/reschedule",
        f"/v2/bookings/{first.body['new_booking_id']}/reschedule",
    ]


def test_calcom_after_commit_dropped_connection_is_one_success_and_one_move(
    invoke: Invoker, sandboxes: dict[str, Sandbox], stack: Stack
) -> None:
    box = sandboxes["calcom"]
    uid = box.bookings[2]
    box.fault(drop_connection=True, after_commit=True, times=1)
    start = _utc_slot(53, 13)
    answer = _move(invoke, {"provider": "calcom", "booking_id": uid, "start": start})
    assert answer.status == 200, answer.body
    new_uid = answer.body["new_booking_id"]
    moved = [b for b in httpx_bookings(box) if b.get("rescheduledFromUid") == uid]
    assert [b["uid"] for b in moved] == [new_uid]  # exactly one new booking
    assert moved[0]["start"].startswith(start.removesuffix("Z"))
    assert stored_record(stack, answer.body["reschedule_id"])["new_booking_id"] == new_uid
    # The POST was never sent again: reading the old uid, then its successor, settled it.
    assert len(_posts(box)) == 1
    assert [c["path"] for c in box.calls()[-2:]] == [f"/v2/bookings/{uid}", f"/v2/bookings/{new_uid}"]


def httpx_bookings(box: Sandbox) -> list[dict[str, Any]]:
    import httpx  # noqa: PLC0415

    bookings: list[dict[str, Any]] = httpx.get(f"{box.url}/_sandbox/bookings").json()
    return bookings


def test_calcom_cancelled_booking_is_a_422_naming_the_booking(
    invoke: Invoker, sandboxes: dict[str, Sandbox]
) -> None:
    answer = _move(
        invoke, {"provider": "calcom", "booking_id": CALCOM_CANCELLED_UID, "start": _utc_slot(54, 15)}
    )
    assert answer.status == 422, answer.body
    assert answer.body["code"] == "booking_not_reschedulable"
    assert answer.body["errors"][0]["field"] == "booking_id"
    assert _posts(sandboxes["calcom"]) == []


def test_calcom_refuses_end_and_duration_as_not_supported(
    invoke: Invoker, sandboxes: dict[str, Sandbox]
) -> None:
    answer = _move(
        invoke,
        {
            "provider": "calcom",
            "booking_id": sandboxes["calcom"].bookings[3],
            "start": _utc_slot(55, 15),
            "duration_minutes": 30,
            "time_format": 12,
        },
    )
    assert answer.status == 422
    assert {(e["field"], e["code"]) for e in answer.body["errors"]} == {
        ("duration_minutes", "not_supported"),
        ("time_format", "not_supported"),
    }


def test_acuity_gets_basic_auth_and_the_offset_of_the_zone(
    invoke: Invoker, sandboxes: dict[str, Sandbox]
) -> None:
    box = sandboxes["acuity"]
    appointment = box.bookings[0]
    # A July date: New York is on daylight saving time, so the offset is -0400.
    year = datetime.now(UTC).year + 1
    answer = _move(
        invoke,
        {
            "provider": "acuity",
            "booking_id": appointment,
            "start": f"{year}-07-14T10:00:00",
            "timezone": "America/New_York",
        },
    )
    assert answer.status == 200, answer.body
    (call,) = box.calls()
    assert (call["method"], call["path"]) == ("PUT", f"/api/v1/appointments/{appointment}/reschedule")
    expected = "Basic " + base64.b64encode(b"10001:sandbox-acuity-key-0001").decode()
    assert call["headers"]["authorization"] == expected
    assert call["body"] == {"datetime": f"{year}-07-14T10:00:00-0400", "timezone": "America/New_York"}
    result = answer.body["provider_result"]
    assert result["datetime"] == f"{year}-07-14T10:00:00-0400"
    assert not {"firstName", "lastName", "email", "phone"} & set(result)


def test_acuity_refusal_codes_become_field_problems(invoke: Invoker) -> None:
    answer = _move(
        invoke, {"provider": "acuity", "booking_id": ACUITY_CANCELED_ID, "start": _utc_slot(56, 15)}
    )
    assert answer.status == 422, answer.body
    assert [(e["field"], e["code"]) for e in answer.body["errors"]] == [("booking_id", "reschedule_canceled")]
    off_grid = _move(
        invoke,
        {
            "provider": "acuity",
            "booking_id": "700002",
            "start": _utc_slot(57, 15).replace(":00:00Z", ":07:00Z"),
        },
    )
    assert off_grid.status == 422, off_grid.body
    assert [(e["field"], e["code"]) for e in off_grid.body["errors"]] == [("start", "not_available")]


def test_acuity_secret_missing_user_id_is_not_configured_naming_no_value(stack: Stack) -> None:
    prefix = "relay-test-unconfigured"
    put_secret_json(
        stack.client("secretsmanager"),
        f"{prefix}/providers/acuity/default",
        {"api_key": "sandbox-acuity-key-0001"},
    )
    settings = settings_from(stack.env | {"SECRETS_PREFIX": prefix})
    relay = build(settings, dynamodb=stack.client("dynamodb"), secretsmanager=stack.client("secretsmanager"))
    command = RescheduleCommand(
        provider="acuity",
        account="default",
        booking_id="700003",
        start=datetime.now(UTC).replace(microsecond=0) + timedelta(days=60),
        end=None,
        timezone="UTC",
    )
    try:
        relay.service.reschedule(
            command, source="zapier-demo", idempotency_key=None, deadline=Deadline.within(10)
        )
    except RelayError as error:
        problem, cause = error.problem(), error.log_detail
    else:  # pragma: no cover
        raise AssertionError("a secret without user_id must not move the booking")
    assert (problem["status"], problem["code"]) == (503, "not_configured")
    # The operator's log line says what to fix; the caller's answer names no secret path.
    assert "user_id" in str(cause)
    assert prefix not in str(problem)
    assert "sandbox-acuity-key" not in str(problem) + str(cause)
