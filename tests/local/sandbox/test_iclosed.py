"""The iClosed sandbox follows contracts/iclosed.md: `PUT /v1/eventCalls/reschedule`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from local.sandbox import SandboxProvider
from tests.local.sandbox.helpers import (
    HTTP,
    MISSING,
    TOKENS,
    arm_fault,
    auth,
    booking,
    send_valid,
    valid_iclosed_body,
    with_patch,
)
from tests.local.sandbox.helpers import (
    ICLOSED_RESCHEDULE_PATH as RESCHEDULE_PATH,
)

ICLOSED_TOKEN = TOKENS["iclosed"]
EVENT_CALL_KEYS = {
    "id", "eventId", "dateTime", "dateTimeUTC", "timeZone", "eventType", "rescheduledBy",
    "rescheduleReason", "notes", "userId", "inviteeEmail", "inviteeName", "inviteePhone",
    "inviteTimeZone", "duration", "durationUnit", "location", "locationLink", "allowReschedule",
    "deletedAt", "cancelReason", "contactId", "callType", "SettedClaim", "deals", "task", "utm",
    "questions", "secondaryAnswers",
}  # fmt: skip


def test_iclosed_reschedule_returns_the_moved_event_call(iclosed: SandboxProvider) -> None:
    # Given a seeded call and a complete request
    body = {
        "id": 1002,
        "dateTime": "2031-07-01T09:30:00",
        "timeZone": "Europe/Berlin",
        "rescheduleReason": "Invitee asked to move",
        "notes": "moved by the sandbox test",
        "userId": 702,
    }

    # When it is rescheduled
    response = HTTP.put(f"{iclosed.url}{RESCHEDULE_PATH}", json=body, headers=auth(iclosed))

    # Then the answer is the contract's shape with the new time, UTC computed from the zone
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    payload = response.json()
    assert set(payload) == {"data"}
    assert set(payload["data"]) == {"eventCall"}
    call = payload["data"]["eventCall"]
    assert set(call) == EVENT_CALL_KEYS
    assert call["id"] == 1002
    assert call["dateTime"] == "2031-07-01T09:30:00"
    assert call["dateTimeUTC"] == "2031-07-01T07:30:00.000Z"  # CEST is UTC+2
    assert call["timeZone"] == "Europe/Berlin"
    assert call["rescheduleReason"] == "Invitee asked to move"
    assert call["notes"] == "moved by the sandbox test"
    assert call["userId"] == 702
    assert call["eventType"] == "UPCOMING"
    assert call["duration"] == 30
    assert call["durationUnit"] == "MINUTES"
    assert call["allowReschedule"] is True
    assert call["deletedAt"] is None
    assert call["cancelReason"] is None
    assert call["SettedClaim"] == {}
    for list_key in ("deals", "task", "utm", "questions", "secondaryAnswers"):
        assert call[list_key] == []
    assert call["inviteeEmail"] == "sandbox-invitee-1002@example.test"
    assert call["inviteePhone"] == "+1-555-0100"
    assert isinstance(call["eventId"], int)
    assert isinstance(call["contactId"], int)
    # and the stored booking moved
    assert booking(iclosed, "1002")["dateTimeUTC"] == "2031-07-01T07:30:00.000Z"


@pytest.mark.parametrize(
    ("date_time", "zone", "expected_utc"),
    [
        ("2031-01-15T10:00:00", "America/New_York", "2031-01-15T15:00:00.000Z"),  # EST
        ("2031-07-15T10:00:00", "America/New_York", "2031-07-15T14:00:00.000Z"),  # EDT
        ("2031-07-15T10:00:00", "Asia/Kolkata", "2031-07-15T04:30:00.000Z"),
        ("2031-12-31T23:30:00", "UTC", "2031-12-31T23:30:00.000Z"),
    ],
)
def test_iclosed_utc_time_follows_the_zone_rules(
    iclosed: SandboxProvider, date_time: str, zone: str, expected_utc: str
) -> None:
    body = {"id": 1005, "dateTime": date_time, "timeZone": zone}
    response = HTTP.put(f"{iclosed.url}{RESCHEDULE_PATH}", json=body, headers=auth(iclosed))
    assert response.status_code == 200
    assert response.json()["data"]["eventCall"]["dateTimeUTC"] == expected_utc


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"id": MISSING}, "id"),
        ({"id": "1003"}, "id"),
        ({"id": True}, "id"),
        ({"id": 1003.0}, "id"),
        ({"id": None}, "id"),
        ({"dateTime": MISSING}, "dateTime"),
        ({"dateTime": "2031-09-10T11:00:00Z"}, "dateTime"),
        ({"dateTime": "2031-09-10T11:00:00+02:00"}, "dateTime"),
        ({"dateTime": "2031-09-10T11:00:00.000"}, "dateTime"),
        ({"dateTime": "2031-09-10 11:00:00"}, "dateTime"),
        ({"dateTime": "2031-09-10"}, "dateTime"),
        ({"dateTime": "2031-02-30T11:00:00"}, "dateTime"),
        ({"dateTime": 1946804400}, "dateTime"),
        ({"timeZone": MISSING}, "timeZone"),
        ({"timeZone": "Mars/Olympus_Mons"}, "timeZone"),
        ({"timeZone": "america/chicago"}, "timeZone"),
        ({"timeZone": "+02:00"}, "timeZone"),
        ({"timeZone": ""}, "timeZone"),
        ({"timeZone": -5}, "timeZone"),
        ({"rescheduleReason": 7}, "rescheduleReason"),
        ({"notes": ["a", "b"]}, "notes"),
        ({"userId": "701"}, "userId"),
        ({"userId": True}, "userId"),
        ({"userId": 7.5}, "userId"),
    ],
)
def test_iclosed_rejects_invalid_fields_zod_style(
    iclosed: SandboxProvider, patch: dict[str, Any], field: str
) -> None:
    body = with_patch(valid_iclosed_body(), patch)
    response = HTTP.put(f"{iclosed.url}{RESCHEDULE_PATH}", json=body, headers=auth(iclosed))
    assert response.status_code == 400
    message = response.json()["message"]
    assert message["status"] == 400
    assert message["endpoint"] == RESCHEDULE_PATH
    assert message["method"] == "PUT"
    assert message["details"]["formErrors"] == []
    field_errors = message["details"]["fieldErrors"]
    assert set(field_errors) == {field}
    assert field_errors[field]
    assert all(isinstance(text, str) and text for text in field_errors[field])


def test_iclosed_rejected_request_leaves_the_booking_alone(iclosed: SandboxProvider) -> None:
    before = booking(iclosed, "1004")
    body = {"id": 1004, "dateTime": "2031-10-01T08:00:00Z", "timeZone": "UTC"}
    response = HTTP.put(f"{iclosed.url}{RESCHEDULE_PATH}", json=body, headers=auth(iclosed))
    assert response.status_code == 400
    assert booking(iclosed, "1004") == before


def test_iclosed_rejects_unknown_fields(iclosed: SandboxProvider) -> None:
    body = {**valid_iclosed_body(), "when": "tomorrow"}
    response = HTTP.put(f"{iclosed.url}{RESCHEDULE_PATH}", json=body, headers=auth(iclosed))
    assert response.status_code == 400
    details = response.json()["message"]["details"]
    assert details == {"formErrors": ["Unrecognized key(s) in object: 'when'"], "fieldErrors": {}}


def test_iclosed_rejects_a_body_that_is_not_an_object(iclosed: SandboxProvider) -> None:
    response = HTTP.put(f"{iclosed.url}{RESCHEDULE_PATH}", json=[valid_iclosed_body()], headers=auth(iclosed))
    assert response.status_code == 400
    assert response.json()["message"]["details"]["formErrors"] == ["Expected object, received array"]


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (json.dumps(valid_iclosed_body()), "text/plain"),
        (json.dumps(valid_iclosed_body()), None),
        ('{"id": 1003,', "application/json"),
        ('{"id": NaN, "dateTime": "2031-09-10T11:00:00", "timeZone": "UTC"}', "application/json"),
    ],
)
def test_iclosed_rejects_non_json_requests_with_a_generic_400(
    iclosed: SandboxProvider, content: str, content_type: str | None
) -> None:
    headers = auth(iclosed) | ({"Content-Type": content_type} if content_type else {})
    response = HTTP.put(f"{iclosed.url}{RESCHEDULE_PATH}", content=content, headers=headers)
    assert response.status_code == 400
    payload = response.json()
    assert set(payload) == {"message", "errors"}
    assert isinstance(payload["message"], str)
    assert payload["errors"] == []


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer wrong-token",
        f"bearer {ICLOSED_TOKEN}",
        f"Bearer {ICLOSED_TOKEN}-extra",
        f"Bearer {ICLOSED_TOKEN[:-1]}",
        f"Bearer  {ICLOSED_TOKEN}",
        ICLOSED_TOKEN,
        f"Basic {ICLOSED_TOKEN}",
        "Bearer",
    ],
)
def test_iclosed_rejects_bad_credentials(iclosed: SandboxProvider, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = HTTP.put(f"{iclosed.url}{RESCHEDULE_PATH}", json=valid_iclosed_body(), headers=headers)
    assert response.status_code == 401
    assert response.json() == {"message": "Unauthorized", "errors": []}


@pytest.mark.parametrize("booking_id", [9999, 0, -1001])
def test_iclosed_unknown_call_is_404(iclosed: SandboxProvider, booking_id: int) -> None:
    body = valid_iclosed_body(booking_id=booking_id)
    response = HTTP.put(f"{iclosed.url}{RESCHEDULE_PATH}", json=body, headers=auth(iclosed))
    assert response.status_code == 404
    assert response.json() == {"message": "Event call not found", "errors": []}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", RESCHEDULE_PATH),
        ("POST", RESCHEDULE_PATH),
        ("PUT", "/v1/eventCalls/1003"),
        ("PUT", "/v1/eventcalls/reschedule"),
        ("PUT", "/_sandbox"),
    ],
)
def test_iclosed_other_routes_are_404_in_its_shape(iclosed: SandboxProvider, method: str, path: str) -> None:
    response = HTTP.request(method, f"{iclosed.url}{path}", json=valid_iclosed_body(), headers=auth(iclosed))
    assert response.status_code == 404
    payload = response.json()
    assert set(payload) == {"message", "errors"}
    assert payload["errors"] == []


def test_iclosed_rate_limit_fault_uses_the_contract_shape(iclosed: SandboxProvider) -> None:
    arm_fault(iclosed, status=429, retry_after=7)
    response = send_valid(iclosed)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.headers["ratelimit-limit"] == "20"
    assert response.headers["ratelimit-remaining"] == "0"
    assert response.headers["ratelimit-reset"] == "7"
    payload = response.json()
    assert payload["code"] == "RATE_LIMIT_EXCEEDED"
    assert payload["retryAfter"] == 7
    assert isinstance(payload["message"], str)


def test_oversized_body_is_refused(iclosed: SandboxProvider) -> None:
    headers = auth(iclosed) | {"Content-Type": "application/json"}
    content = b'{"notes": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    response = HTTP.put(f"{iclosed.url}{RESCHEDULE_PATH}", content=content, headers=headers)
    assert response.status_code == 413
    assert response.json()["errors"] == []
