"""The Acuity sandbox follows docs/providers/acuity.md: `PUT /api/v1/appointments/{id}/reschedule` and
`GET /api/v1/appointments/{id}`."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from local.sandbox import SandboxProvider
from local.sandbox.acuity import BUSY_SLOT_UTC, MAX_DAYS_IN_ADVANCE
from local.sandbox.bookings import ACUITY_CANCELED_ID, ACUITY_IDS, ACUITY_NOT_ALLOWED_ID, ACUITY_SERIES_ID
from tests.local.sandbox.helpers import HTTP, MISSING, arm_fault, auth, basic, booking, calls, with_patch

PERSONAL_FIELDS = ("firstName", "lastName", "email", "phone")
APPOINTMENT_KEYS = {
    "id", "firstName", "lastName", "email", "phone", "date", "time", "endTime", "datetime", "timezone",
    "duration", "appointmentTypeID", "calendarID", "calendar", "canceled", "canClientReschedule", "forms",
}  # fmt: skip
TOO_SOON = "not_available_min_hours_in_advance"
VALID = {"datetime": "2031-09-10T11:00:00-0500", "timezone": "America/Chicago"}


def reschedule(
    provider: SandboxProvider, appointment_id: int | str, body: Any, query: str = "", **headers: str
) -> httpx.Response:
    url = f"{provider.url}/api/v1/appointments/{appointment_id}/reschedule{query}"
    return HTTP.put(url, json=body, headers=auth(provider) | headers)


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    payload = response.json()
    assert set(payload) == {"status_code", "message", "error"}
    assert payload["status_code"] == status
    assert payload["error"] == code
    assert isinstance(payload["message"], str)
    assert payload["message"]


def test_reschedule_returns_the_moved_appointment(acuity: SandboxProvider) -> None:
    # Given a seeded appointment on a New York calendar
    body = {"datetime": "2031-07-01T15:30:00+02:00", "timezone": "Europe/Berlin"}

    # When it is moved with an offset time
    response = reschedule(acuity, ACUITY_IDS[0], body)

    # Then the appointment comes back in the calendar's zone, with its type's length
    assert response.status_code == 200
    appointment = response.json()
    assert set(appointment) >= APPOINTMENT_KEYS
    assert appointment["id"] == ACUITY_IDS[0]
    assert appointment["datetime"] == "2031-07-01T09:30:00-0400"  # 13:30Z in New York (EDT)
    assert appointment["date"] == "July 1, 2031"
    assert appointment["time"] == "9:30am"
    assert appointment["endTime"] == "10:00am"
    assert appointment["duration"] == "30"
    assert appointment["timezone"] == "Europe/Berlin"
    assert appointment["calendarID"] == 1
    assert appointment["canceled"] is False
    # with fake personal data for the relay to trim
    assert appointment["firstName"].startswith("Sandbox")
    assert appointment["email"].startswith("sandbox-")
    assert appointment["email"].endswith("@example.test")
    assert all(appointment[field] for field in PERSONAL_FIELDS)
    assert appointment["forms"][0]["values"][0]["value"].startswith("sandbox")
    assert booking(acuity, str(ACUITY_IDS[0]))["datetime"] == "2031-07-01T09:30:00-0400"


@pytest.mark.parametrize(
    "moment",
    [
        "2031-09-10T11:00:00-0500",
        "2031-09-10T11:00:00-05:00",
        "2031-09-10T16:00:00Z",
        "2031-09-10T11:00-0500",
    ],
)
def test_offset_forms_are_accepted(acuity: SandboxProvider, moment: str) -> None:
    response = reschedule(acuity, ACUITY_IDS[1], {"datetime": moment})
    assert response.status_code == 200
    assert response.json()["datetime"] == "2031-09-10T18:00:00+0200"  # a Berlin calendar


def test_calendar_can_be_changed_or_left_to_acuity(acuity: SandboxProvider) -> None:
    moved = reschedule(acuity, ACUITY_IDS[3], {"datetime": "2031-09-10T11:00:00-0500", "calendarID": 2})
    assert moved.json()["calendarID"] == 2
    assert moved.json()["datetime"] == "2031-09-10T18:00:00+0200"
    kept = reschedule(acuity, ACUITY_IDS[3], {"datetime": "2031-09-10T11:00:00-0500", "calendarID": None})
    assert kept.json()["calendarID"] == 2


@pytest.mark.parametrize(
    ("patch", "code"),
    [
        ({"datetime": MISSING}, "required_datetime"),
        ({"datetime": ""}, "required_datetime"),
        ({"datetime": None}, "required_datetime"),
        ({"datetime": "2031-09-10T11:00:00"}, "invalid_datetime"),  # no offset: refused, never guessed
        ({"datetime": "2031-09-10 11:00"}, "invalid_datetime"),
        ({"datetime": "next tuesday"}, "invalid_datetime"),
        ({"datetime": "2031-02-30T11:00:00-0500"}, "invalid_datetime"),
        ({"datetime": 1946822400}, "invalid_datetime"),
        ({"timezone": "Mars/Olympus_Mons"}, "invalid_timezone"),
        ({"timezone": "EST5EDT!"}, "invalid_timezone"),
        ({"timezone": 5}, "invalid_timezone"),
        ({"calendarID": 99}, "invalid_calendar"),
        ({"calendarID": "1"}, "invalid_calendar"),
        ({"calendarID": True}, "invalid_calendar"),
    ],
)
def test_invalid_fields_get_their_contract_code(
    acuity: SandboxProvider, patch: dict[str, Any], code: str
) -> None:
    before = booking(acuity, str(ACUITY_IDS[4]))
    assert_error(reschedule(acuity, ACUITY_IDS[4], with_patch(VALID, patch)), 400, code)
    assert booking(acuity, str(ACUITY_IDS[4])) == before


@pytest.mark.parametrize(
    ("appointment_id", "code"),
    [
        (ACUITY_CANCELED_ID, "reschedule_canceled"),
        (ACUITY_SERIES_ID, "reschedule_series"),
        (ACUITY_NOT_ALLOWED_ID, "reschedule_not_allowed"),
    ],
)
def test_seeded_refusals(acuity: SandboxProvider, appointment_id: int, code: str) -> None:
    assert_error(reschedule(acuity, appointment_id, VALID), 400, code)


def test_admin_may_move_what_a_client_may_not(acuity: SandboxProvider) -> None:
    assert reschedule(acuity, ACUITY_NOT_ALLOWED_ID, VALID, "?admin=true").status_code == 200
    # but a canceled appointment stays canceled
    assert_error(reschedule(acuity, ACUITY_CANCELED_ID, VALID, "?admin=true"), 400, "reschedule_canceled")


def _at(moment: datetime) -> dict[str, str]:
    return {"datetime": moment.strftime("%Y-%m-%dT%H:%M:%S%z")}


@pytest.mark.parametrize(
    ("moment", "code"),
    [
        (BUSY_SLOT_UTC, "not_available"),
        (datetime(2031, 9, 10, 11, 7, tzinfo=UTC), "not_available"),  # off the slot grid
        (datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=30), TOO_SOON),
        (datetime(2031, 9, 10, 11, 0, tzinfo=UTC) - timedelta(days=3000), TOO_SOON),  # in the past
        (datetime.now(UTC) + timedelta(days=MAX_DAYS_IN_ADVANCE + 30), "not_available_max_days_in_advance"),
    ],
)
def test_availability_is_checked_unless_admin(acuity: SandboxProvider, moment: datetime, code: str) -> None:
    assert_error(reschedule(acuity, ACUITY_IDS[2], _at(moment)), 400, code)
    assert reschedule(acuity, ACUITY_IDS[2], _at(moment), "?admin=true").status_code == 200


def test_query_flags_are_seen_in_the_call_log(acuity: SandboxProvider) -> None:
    assert reschedule(acuity, ACUITY_IDS[2], VALID, "?admin=true&noEmail=true").status_code == 200
    assert calls(acuity)[0]["path"].endswith("/reschedule?admin=true&noEmail=true")


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        basic("20002:wrong-key"),
        basic("20003:sandbox-acuity-test-key-0002"),
        basic("sandbox-acuity-test-key-0002"),
        "Bearer sandbox-acuity-test-key-0002",
        "Basic not-base64!",
        "Basic " + base64.b64encode(b"\xff\xfe").decode(),
    ],
)
def test_bad_credentials_are_401(acuity: SandboxProvider, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    url = f"{acuity.url}/api/v1/appointments/{ACUITY_IDS[0]}/reschedule"
    assert_error(HTTP.put(url, json=VALID, headers=headers), 401, "unauthorized")


@pytest.mark.parametrize("appointment_id", ["999999", "0", "-700001", "abc", "700001.0"])
def test_unknown_or_malformed_id_is_404(acuity: SandboxProvider, appointment_id: str) -> None:
    assert_error(reschedule(acuity, appointment_id, VALID), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/appointments/700001/reschedule"),
        ("PUT", "/api/v1/appointments/700001"),
        ("GET", "/"),
    ],
)
def test_other_routes_are_404(acuity: SandboxProvider, method: str, path: str) -> None:
    response = HTTP.request(method, f"{acuity.url}{path}", json=VALID, headers=auth(acuity))
    assert_error(response, 404, "not_found")


@pytest.mark.parametrize("body", [[VALID], "2031-09-10T11:00:00-0500", {**VALID, "notes": "x"}])
def test_non_object_or_unknown_fields_are_400(acuity: SandboxProvider, body: Any) -> None:
    assert reschedule(acuity, ACUITY_IDS[0], body).status_code == 400


def test_rate_limit_fault_is_429_in_the_envelope(acuity: SandboxProvider) -> None:
    arm_fault(acuity, status=429, retry_after=3)
    response = reschedule(acuity, ACUITY_IDS[0], VALID)
    assert_error(response, 429, "too_many_requests")
    assert response.headers["retry-after"] == "3"


def test_reading_an_appointment_shows_where_it_is_now(acuity: SandboxProvider) -> None:
    url = f"{acuity.url}/api/v1/appointments/{ACUITY_IDS[2]}"
    assert reschedule(acuity, ACUITY_IDS[2], {"datetime": "2031-08-05T10:00:00-0400"}).status_code == 200
    read = HTTP.get(url, headers=auth(acuity))
    assert read.status_code == 200
    assert read.json()["id"] == ACUITY_IDS[2]
    assert datetime.fromisoformat(read.json()["datetime"]) == datetime(2031, 8, 5, 14, tzinfo=UTC)
    assert set(read.json()) >= APPOINTMENT_KEYS
    assert_error(HTTP.get(f"{acuity.url}/api/v1/appointments/999999", headers=auth(acuity)), 404, "not_found")
    assert HTTP.get(url, headers={"Authorization": basic("20002:wrong")}).status_code == 401


def test_a_commit_then_drop_is_seen_by_a_read(acuity: SandboxProvider) -> None:
    arm_fault(acuity, drop_connection=True, after_commit=True)
    with pytest.raises(httpx.TransportError):
        reschedule(acuity, ACUITY_IDS[3], {"datetime": "2031-08-06T10:00:00-0400"})
    read = HTTP.get(f"{acuity.url}/api/v1/appointments/{ACUITY_IDS[3]}", headers=auth(acuity))
    # Shown in the appointment's calendar zone (another test may have changed it): the same instant.
    assert datetime.fromisoformat(read.json()["datetime"]) == datetime(2031, 8, 6, 14, tzinfo=UTC)
