"""The sandbox providers follow the iClosed and NovaCal contracts, and their control surface works."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from local.sandbox import PROVIDERS, SandboxProvider, start_sandbox

REPO_ROOT = Path(__file__).resolve().parents[2]
ICLOSED_TOKEN = "iclosed-sandbox-token-0001"
# Not the default token, so the tests prove `token=` is what the server checks.
NOVACAL_TOKEN = "novacal-test-token-0002"
RESCHEDULE_PATH = "/v1/eventCalls/reschedule"
TIMEOUT = httpx.Timeout(10.0)
MISSING = object()  # marks a field to remove from a valid body
# One pooled client for control calls and one-off provider calls; tests about connections open their own.
HTTP = httpx.Client(timeout=TIMEOUT)

EVENT_CALL_KEYS = {
    "id", "eventId", "dateTime", "dateTimeUTC", "timeZone", "eventType", "rescheduledBy",
    "rescheduleReason", "notes", "userId", "inviteeEmail", "inviteeName", "inviteePhone",
    "inviteTimeZone", "duration", "durationUnit", "location", "locationLink", "allowReschedule",
    "deletedAt", "cancelReason", "contactId", "callType", "SettedClaim", "deals", "task", "utm",
    "questions", "secondaryAnswers",
}  # fmt: skip
NOVACAL_DATA_KEYS = {
    "id", "start", "end", "canceled_at", "cancellation_reason", "location", "form_field_answers",
    "status", "name", "organizer", "hosts", "booker", "guests",
}  # fmt: skip
ORGANIZER_KEYS = {
    "first_name", "last_name", "name", "email", "username", "timezone", "time_format",
    "start_of_week", "avatar",
}  # fmt: skip
BOOKER_KEYS = {"name", "email", "timezone", "time_format"}


# -- fixtures and helpers ------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _close_http_client() -> Iterator[None]:
    yield
    HTTP.close()


@pytest.fixture(scope="module")
def iclosed() -> Iterator[SandboxProvider]:
    sandbox = start_sandbox("iclosed", token=ICLOSED_TOKEN, host="127.0.0.1", port=0)
    yield sandbox
    sandbox.stop()


@pytest.fixture(scope="module")
def novacal() -> Iterator[SandboxProvider]:
    sandbox = start_sandbox("novacal", token=NOVACAL_TOKEN, host="127.0.0.1", port=0)
    yield sandbox
    sandbox.stop()


@pytest.fixture(params=PROVIDERS)
def sandbox(request: pytest.FixtureRequest) -> SandboxProvider:
    """Each provider in turn, for behaviour both sandboxes share."""
    provider: SandboxProvider = request.getfixturevalue(request.param)
    return provider


@pytest.fixture(autouse=True)
def _clean_sandboxes(iclosed: SandboxProvider, novacal: SandboxProvider) -> None:
    for provider in (iclosed, novacal):
        for resource in ("faults", "calls", "stats"):
            assert HTTP.delete(f"{provider.url}/_sandbox/{resource}").status_code == 204


def auth(provider: SandboxProvider) -> dict[str, str]:
    return {"Authorization": f"Bearer {provider.token}"}


def with_patch(body: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    merged = {**body, **patch}
    return {key: value for key, value in merged.items() if value is not MISSING}


def valid_iclosed_body(booking_id: int = 1003) -> dict[str, Any]:
    return {"id": booking_id, "dateTime": "2031-09-10T11:00:00", "timeZone": "America/Chicago"}


def valid_novacal_body() -> dict[str, Any]:
    return {
        "start": "2031-09-10T16:00:00Z",
        "end": "2031-09-10T16:30:00Z",
        "timezone": "America/Chicago",
        "time_format": 12,
    }


def valid_call(provider: SandboxProvider) -> tuple[str, dict[str, Any]]:
    """Path and body of a reschedule the provider accepts (uses its third seeded booking)."""
    if provider.name == "iclosed":
        return RESCHEDULE_PATH, valid_iclosed_body(int(provider.bookings[2]))
    return f"/v1/events/{provider.bookings[2]}", valid_novacal_body()


def put_valid(provider: SandboxProvider, client: httpx.Client | None = None) -> httpx.Response:
    path, body = valid_call(provider)
    if client is not None:
        return client.put(path, json=body, headers=auth(provider))
    return HTTP.put(f"{provider.url}{path}", json=body, headers=auth(provider))


def arm_fault(provider: SandboxProvider, **fault: Any) -> None:
    response = HTTP.post(f"{provider.url}/_sandbox/faults", json=fault)
    assert response.status_code == 204, response.text


def calls(provider: SandboxProvider) -> list[dict[str, Any]]:
    response = HTTP.get(f"{provider.url}/_sandbox/calls")
    assert response.status_code == 200
    logged: list[dict[str, Any]] = response.json()
    return logged


def stats(provider: SandboxProvider) -> dict[str, int]:
    result: dict[str, int] = HTTP.get(f"{provider.url}/_sandbox/stats").json()
    return result


def booking(provider: SandboxProvider, booking_id: str) -> dict[str, Any]:
    snapshot = HTTP.get(f"{provider.url}/_sandbox/bookings").json()
    return next(item for item in snapshot if str(item["id"]) == booking_id)


def provider_error(provider: SandboxProvider, message: str) -> dict[str, Any]:
    if provider.name == "iclosed":
        return {"message": message, "errors": []}
    return {"success": False, "message": message}


# -- iClosed: PUT /v1/eventCalls/reschedule -------------------------------------------------------


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


# -- NovaCal: PUT /v1/events/{id} --------------------------------------------------------------


def test_novacal_reschedule_returns_the_moved_event(novacal: SandboxProvider) -> None:
    # Given a seeded event and a complete request
    event_id = novacal.bookings[1]
    body = {
        "start": "2031-07-01T09:30:00+02:00",
        "end": "2031-07-01T10:00:00+02:00",
        "timezone": "Europe/Berlin",
        "time_format": 24,
        "form_field_answers": {"notes": "moved by the sandbox test"},
    }

    # When it is rescheduled
    response = HTTP.put(f"{novacal.url}/v1/events/{event_id}", json=body, headers=auth(novacal))

    # Then the answer is the contract's envelope with the new times (in UTC)
    assert response.status_code == 200
    payload = response.json()
    assert set(payload) == {"success", "data"}
    assert payload["success"] is True
    data = payload["data"]
    assert set(data) == NOVACAL_DATA_KEYS
    assert data["id"] == event_id
    assert data["start"] == "2031-07-01T07:30:00Z"
    assert data["end"] == "2031-07-01T08:00:00Z"
    assert data["canceled_at"] is None
    assert data["cancellation_reason"] is None
    assert data["status"] == "accepted"
    assert isinstance(data["name"], str)
    assert isinstance(data["location"], str)
    assert set(data["organizer"]) == ORGANIZER_KEYS
    assert data["organizer"]["email"].endswith("@example.test")
    assert data["hosts"]
    assert all(set(host) == ORGANIZER_KEYS for host in data["hosts"])
    assert set(data["booker"]) == BOOKER_KEYS
    assert data["booker"]["timezone"] == "Europe/Berlin"
    assert data["booker"]["time_format"] == 24
    assert data["booker"]["email"].endswith("@example.test")
    assert data["guests"]
    assert all(isinstance(guest, str) and guest.endswith("@example.test") for guest in data["guests"])
    # answers are merged into the existing ones
    assert data["form_field_answers"]["notes"] == "moved by the sandbox test"
    assert data["form_field_answers"]["email"].endswith("@example.test")
    # and the stored event moved
    assert booking(novacal, event_id)["start"] == "2031-07-01T07:30:00Z"


def test_novacal_accepts_an_upper_case_uuid(novacal: SandboxProvider) -> None:
    event_id = novacal.bookings[3]
    response = HTTP.put(
        f"{novacal.url}/v1/events/{event_id.upper()}", json=valid_novacal_body(), headers=auth(novacal)
    )
    assert response.status_code == 200
    assert response.json()["data"]["id"] == event_id


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"start": MISSING}, "start"),
        ({"start": "2031-09-10T16:00:00"}, "start"),
        ({"start": "2031-09-10"}, "start"),
        ({"start": "2031-09-10T16:00:00+2:00"}, "start"),
        ({"start": "2031-13-10T16:00:00Z"}, "start"),
        ({"start": 1946822400}, "start"),
        ({"end": MISSING}, "end"),
        ({"end": "2031-09-10T16:30:00"}, "end"),
        ({"end": "2031-09-10T15:30:00Z"}, "end"),
        ({"end": "2031-09-10T16:00:00Z"}, "end"),
        ({"end": "2031-09-10T18:00:00+02:00"}, "end"),  # same instant as start
        ({"timezone": MISSING}, "timezone"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"timezone": "GMT+2"}, "timezone"),
        ({"timezone": None}, "timezone"),
        ({"time_format": MISSING}, "time_format"),
        ({"time_format": 13}, "time_format"),
        ({"time_format": "24"}, "time_format"),
        ({"time_format": True}, "time_format"),
        ({"time_format": 24.0}, "time_format"),
        ({"time_format": None}, "time_format"),
        ({"form_field_answers": []}, "form_field_answers"),
        ({"form_field_answers": "name=x"}, "form_field_answers"),
        ({"form_field_answers": {"name": 5}}, "form_field_answers"),
        ({"form_field_answers": None}, "form_field_answers"),
    ],
)
def test_novacal_rejects_invalid_fields_with_422(
    novacal: SandboxProvider, patch: dict[str, Any], field: str
) -> None:
    body = with_patch(valid_novacal_body(), patch)
    response = HTTP.put(f"{novacal.url}/v1/events/{novacal.bookings[0]}", json=body, headers=auth(novacal))
    assert response.status_code == 422
    payload = response.json()
    assert set(payload) == {"success", "message", "details"}
    assert payload["success"] is False
    assert payload["message"] == "Validation failed"
    assert set(payload["details"]) == {field}
    assert all(isinstance(text, str) and text for text in payload["details"][field])


def test_novacal_rejected_request_leaves_the_event_alone(novacal: SandboxProvider) -> None:
    event_id = novacal.bookings[4]
    before = booking(novacal, event_id)
    body = with_patch(valid_novacal_body(), {"end": "2031-09-10T15:00:00Z"})
    response = HTTP.put(f"{novacal.url}/v1/events/{event_id}", json=body, headers=auth(novacal))
    assert response.status_code == 422
    assert booking(novacal, event_id) == before


def test_novacal_rejects_unknown_fields(novacal: SandboxProvider) -> None:
    body = {**valid_novacal_body(), "title": "renamed"}
    response = HTTP.put(f"{novacal.url}/v1/events/{novacal.bookings[0]}", json=body, headers=auth(novacal))
    assert response.status_code == 422
    assert set(response.json()["details"]) == {"title"}


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (json.dumps(valid_novacal_body()), "text/plain"),
        ('{"start": ', "application/json"),
        (json.dumps([valid_novacal_body()]), "application/json"),
    ],
)
def test_novacal_rejects_non_json_requests(novacal: SandboxProvider, content: str, content_type: str) -> None:
    headers = auth(novacal) | {"Content-Type": content_type}
    response = HTTP.put(f"{novacal.url}/v1/events/{novacal.bookings[0]}", content=content, headers=headers)
    assert response.status_code == 422
    payload = response.json()
    assert payload["success"] is False
    assert payload["message"] == "Validation failed"
    assert payload["details"]


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer wrong-token",
        f"bearer {NOVACAL_TOKEN}",
        NOVACAL_TOKEN,
        "Bearer novacal-sandbox-token-0001",
    ],
)
def test_novacal_rejects_bad_credentials(novacal: SandboxProvider, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    url = f"{novacal.url}/v1/events/{novacal.bookings[0]}"
    response = HTTP.put(url, json=valid_novacal_body(), headers=headers)
    assert response.status_code == 401
    assert response.json() == {"success": False, "message": "Unauthorized"}


@pytest.mark.parametrize(
    "event_id",
    [
        "6d3c8f4e-0000-4000-8000-000000000000",  # a UUID, but not a booking
        "1001",
        "3f6c1d2a-9b7e-4c4d-8a51-5a0d0c00000",  # one digit short
        "3f6c1d2a9b7e4c4d8a515a0d0c000001",  # no hyphens
    ],
)
def test_novacal_unknown_or_malformed_event_id_is_404(novacal: SandboxProvider, event_id: str) -> None:
    url = f"{novacal.url}/v1/events/{event_id}"
    response = HTTP.put(url, json=valid_novacal_body(), headers=auth(novacal))
    assert response.status_code == 404
    assert response.json() == {"success": False, "message": "Event not found"}


@pytest.mark.parametrize(
    ("method", "path_template"),
    [
        ("GET", "/v1/events/{id}"),
        ("PATCH", "/v1/events/{id}"),
        ("PUT", "/v1/events/{id}/reschedule"),
        ("PUT", "/v1/bookings/{id}"),
        ("PUT", "/v1/events"),
    ],
)
def test_novacal_other_routes_are_404_in_its_shape(
    novacal: SandboxProvider, method: str, path_template: str
) -> None:
    path = path_template.format(id=novacal.bookings[0])
    response = HTTP.request(method, f"{novacal.url}{path}", json=valid_novacal_body(), headers=auth(novacal))
    assert response.status_code == 404
    payload = response.json()
    assert payload["success"] is False
    assert isinstance(payload["message"], str)


# -- shared behaviour: seeds, call log, faults, stats ----------------------------------------------


def test_seeded_bookings_are_exposed(sandbox: SandboxProvider) -> None:
    assert len(sandbox.bookings) == 5
    assert all(isinstance(booking_id, str) for booking_id in sandbox.bookings)
    if sandbox.name == "iclosed":
        assert sandbox.bookings == ["1001", "1002", "1003", "1004", "1005"]
    else:
        assert all(str(uuid.UUID(booking_id)) == booking_id for booking_id in sandbox.bookings)
    snapshot = HTTP.get(f"{sandbox.url}/_sandbox/bookings").json()
    assert [str(item["id"]) for item in snapshot] == sandbox.bookings


def test_seeded_bookings_start_far_in_the_future() -> None:
    # A fresh server, because other tests move the module's bookings around.
    for name in PROVIDERS:
        fresh = start_sandbox(name, token="fresh-token")
        try:
            snapshot = HTTP.get(f"{fresh.url}/_sandbox/bookings").json()
        finally:
            fresh.stop()
        starts = [item["dateTimeUTC"] if name == "iclosed" else item["start"] for item in snapshot]
        assert all(start >= "2030" for start in starts), starts


def test_url_token_and_name_are_reported(sandbox: SandboxProvider) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", sandbox.url)
    assert sandbox.token == (ICLOSED_TOKEN if sandbox.name == "iclosed" else NOVACAL_TOKEN)
    assert sandbox.name in PROVIDERS


def test_call_log_records_provider_requests_oldest_first(sandbox: SandboxProvider) -> None:
    # Given one valid call, one with a non-JSON body and one with no body at all
    path, body = valid_call(sandbox)
    headers = auth(sandbox) | {"X-Trace-Id": "trace-1"}
    assert HTTP.put(f"{sandbox.url}{path}", json=body, headers=headers).status_code == 200
    text_headers = auth(sandbox) | {"Content-Type": "text/plain"}
    HTTP.put(f"{sandbox.url}{path}", content="not json", headers=text_headers)
    HTTP.get(f"{sandbox.url}/v1/nothing-here?probe=1")
    HTTP.get(f"{sandbox.url}/_sandbox/stats")  # control requests are not logged

    # When the log is read
    logged = calls(sandbox)

    # Then it holds exactly those three, in order, with lower-cased headers and parsed bodies
    assert [(call["method"], call["path"]) for call in logged] == [
        ("PUT", path),
        ("PUT", path),
        ("GET", "/v1/nothing-here?probe=1"),
    ]
    first = logged[0]
    assert set(first) == {"method", "path", "headers", "body"}
    assert all(name == name.lower() for name in first["headers"])
    assert first["headers"]["authorization"] == f"Bearer {sandbox.token}"
    assert first["headers"]["content-type"] == "application/json"
    assert first["headers"]["x-trace-id"] == "trace-1"
    assert first["body"] == body
    assert logged[1]["body"] == "not json"
    assert logged[2]["body"] is None


def test_call_log_can_be_cleared(sandbox: SandboxProvider) -> None:
    put_valid(sandbox)
    assert len(calls(sandbox)) == 1
    assert HTTP.delete(f"{sandbox.url}/_sandbox/calls").status_code == 204
    assert calls(sandbox) == []


def test_call_log_includes_rejected_and_faulted_calls(sandbox: SandboxProvider) -> None:
    arm_fault(sandbox, status=500)
    assert put_valid(sandbox).status_code == 500
    path, body = valid_call(sandbox)
    rejected = HTTP.put(f"{sandbox.url}{path}", json=body, headers={"Authorization": "Bearer nope"})
    assert rejected.status_code == 401
    logged = calls(sandbox)
    assert len(logged) == 2
    assert logged[1]["headers"]["authorization"] == "Bearer nope"


def test_status_fault_counts_down_and_sends_retry_after(sandbox: SandboxProvider) -> None:
    # Given a fault for the next two calls
    arm_fault(sandbox, status=503, times=2, retry_after=1)

    # When three calls arrive
    first, second, third = (put_valid(sandbox) for _ in range(3))

    # Then two fail in the provider's own error shape and the third goes through
    for failed in (first, second):
        assert failed.status_code == 503
        assert failed.headers["retry-after"] == "1"
        assert failed.json() == provider_error(sandbox, "Service Unavailable")
    assert third.status_code == 200
    assert "retry-after" not in third.headers
    assert HTTP.get(f"{sandbox.url}/_sandbox/faults").json() == {"fault": None, "remaining": 0}
    assert len(calls(sandbox)) == 3


def test_status_fault_without_retry_after_sends_no_retry_after(sandbox: SandboxProvider) -> None:
    arm_fault(sandbox, status=502)
    response = put_valid(sandbox)
    assert response.status_code == 502
    assert "retry-after" not in response.headers
    assert response.json() == provider_error(sandbox, "Bad Gateway")


def test_iclosed_rate_limit_fault_uses_the_contract_shape(iclosed: SandboxProvider) -> None:
    arm_fault(iclosed, status=429, retry_after=7)
    response = put_valid(iclosed)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.headers["ratelimit-limit"] == "20"
    assert response.headers["ratelimit-remaining"] == "0"
    assert response.headers["ratelimit-reset"] == "7"
    payload = response.json()
    assert payload["code"] == "RATE_LIMIT_EXCEEDED"
    assert payload["retryAfter"] == 7
    assert isinstance(payload["message"], str)


def test_novacal_rate_limit_fault_uses_the_envelope(novacal: SandboxProvider) -> None:
    arm_fault(novacal, status=429, retry_after=30)
    response = put_valid(novacal)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "30"
    assert response.json() == {"success": False, "message": "Rate limit exceeded"}


def test_delay_only_fault_delays_then_answers_normally(sandbox: SandboxProvider) -> None:
    arm_fault(sandbox, delay_ms=400)
    started = time.monotonic()
    response = put_valid(sandbox)
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert elapsed >= 0.4
    assert HTTP.get(f"{sandbox.url}/_sandbox/faults").json()["fault"] is None


def test_drop_connection_fault_gives_the_client_a_connection_error(sandbox: SandboxProvider) -> None:
    arm_fault(sandbox, drop_connection=True)
    with pytest.raises(httpx.TransportError):
        put_valid(sandbox)
    assert len(calls(sandbox)) == 1
    assert put_valid(sandbox).status_code == 200


def test_drop_connection_on_a_kept_alive_connection(sandbox: SandboxProvider) -> None:
    with httpx.Client(base_url=sandbox.url, timeout=TIMEOUT) as client:
        assert put_valid(sandbox, client).status_code == 200
        arm_fault(sandbox, drop_connection=True)
        with pytest.raises(httpx.TransportError):
            put_valid(sandbox, client)
        assert put_valid(sandbox, client).status_code == 200
    assert stats(sandbox)["connections"] == 2


def test_cleared_fault_no_longer_fires(sandbox: SandboxProvider) -> None:
    arm_fault(sandbox, status=500, times=5)
    assert HTTP.delete(f"{sandbox.url}/_sandbox/faults").status_code == 204
    assert put_valid(sandbox).status_code == 200


def test_new_fault_replaces_the_pending_one(sandbox: SandboxProvider) -> None:
    arm_fault(sandbox, status=500, times=5)
    arm_fault(sandbox, status=504)
    assert put_valid(sandbox).status_code == 504
    assert put_valid(sandbox).status_code == 200


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"status": "503"}',
        '{"status": 200}',
        '{"status": 700}',
        '{"times": 0}',
        '{"times": true}',
        '{"times": null}',
        '{"delay_ms": -1}',
        '{"delay_ms": 1.5}',
        '{"retry_after": 1.5}',
        '{"retry_after": -1}',
        '{"drop_connection": "yes"}',
        '{"surprise": 1}',
    ],
)
def test_fault_switch_rejects_junk(sandbox: SandboxProvider, content: str) -> None:
    response = HTTP.post(f"{sandbox.url}/_sandbox/faults", content=content)
    assert response.status_code == 400
    assert isinstance(response.json()["error"], str)
    assert HTTP.get(f"{sandbox.url}/_sandbox/faults").json()["fault"] is None


def test_keep_alive_reuses_one_connection(sandbox: SandboxProvider) -> None:
    with httpx.Client(base_url=sandbox.url, timeout=TIMEOUT) as client:
        responses = [put_valid(sandbox, client) for _ in range(5)]
    assert [response.status_code for response in responses] == [200] * 5
    assert all("close" not in response.headers.get("connection", "") for response in responses)
    assert stats(sandbox) | {"accepted": 0} == {"connections": 1, "requests": 5, "accepted": 0}


def test_separate_clients_count_separate_connections(sandbox: SandboxProvider) -> None:
    for _ in range(3):
        with httpx.Client(base_url=sandbox.url, timeout=TIMEOUT) as client:
            assert put_valid(sandbox, client).status_code == 200
    counted = stats(sandbox)
    assert counted["connections"] == 3
    assert counted["requests"] == 3
    assert counted["accepted"] >= 3


def test_stats_reset_counts_a_reused_connection_again(sandbox: SandboxProvider) -> None:
    with httpx.Client(base_url=sandbox.url, timeout=TIMEOUT) as client:
        put_valid(sandbox, client)
        assert HTTP.delete(f"{sandbox.url}/_sandbox/stats").status_code == 204
        assert stats(sandbox)["requests"] == 0
        put_valid(sandbox, client)
    assert stats(sandbox)["connections"] == 1
    assert stats(sandbox)["requests"] == 1


def test_chunked_request_body_is_read(sandbox: SandboxProvider) -> None:
    path, body = valid_call(sandbox)
    encoded = json.dumps(body).encode()
    chunks = iter([encoded[:10], encoded[10:]])
    headers = auth(sandbox) | {"Content-Type": "application/json"}
    with httpx.Client(base_url=sandbox.url, timeout=TIMEOUT) as client:
        response = client.put(path, content=chunks, headers=headers)
        assert response.status_code == 200
        assert put_valid(sandbox, client).status_code == 200  # the connection stayed in step
    assert calls(sandbox)[0]["body"] == body


def test_oversized_body_is_refused(iclosed: SandboxProvider) -> None:
    headers = auth(iclosed) | {"Content-Type": "application/json"}
    content = b'{"notes": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    response = HTTP.put(f"{iclosed.url}{RESCHEDULE_PATH}", content=content, headers=headers)
    assert response.status_code == 413
    assert response.json()["errors"] == []


def test_concurrent_requests_are_all_served_and_logged(sandbox: SandboxProvider) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda _: put_valid(sandbox).status_code, range(40)))
    assert statuses == [200] * 40
    assert len(calls(sandbox)) == 40
    assert stats(sandbox)["requests"] == 40


def test_unknown_control_route_is_404(sandbox: SandboxProvider) -> None:
    assert HTTP.get(f"{sandbox.url}/_sandbox/nothing").status_code == 404
    assert HTTP.put(f"{sandbox.url}/_sandbox/calls").status_code == 404
    assert calls(sandbox) == []


# -- lifecycle and CLI -----------------------------------------------------------------------------


def test_start_sandbox_rejects_unknown_providers_and_empty_tokens() -> None:
    assert PROVIDERS == ("iclosed", "novacal")
    with pytest.raises(ValueError, match="unknown sandbox provider"):
        start_sandbox("calendly")
    with pytest.raises(ValueError, match="token"):
        start_sandbox("iclosed", token="")


def test_stop_closes_listener_and_open_connections_and_is_idempotent() -> None:
    provider = start_sandbox("novacal", token="stop-test-token")
    client = httpx.Client(base_url=provider.url, timeout=TIMEOUT)
    try:
        assert put_valid(provider, client).status_code == 200  # leaves a kept-alive connection

        provider.stop()
        provider.stop()

        with pytest.raises(httpx.ConnectError):
            HTTP.get(f"{provider.url}/_sandbox/stats")
        with pytest.raises(httpx.TransportError):
            put_valid(provider, client)
    finally:
        client.close()


def test_cli_serves_until_interrupted() -> None:
    command = [sys.executable, "-m", "local.sandbox", "novacal", "--port", "0", "--token", "cli-token"]
    process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        ready = json.loads(process.stdout.readline())
        assert set(ready) == {"provider", "url", "token", "bookings"}
        assert ready["provider"] == "novacal"
        assert ready["token"] == "cli-token"
        assert len(ready["bookings"]) == 5
        url = f"{ready['url']}/v1/events/{ready['bookings'][0]}"
        response = HTTP.put(url, json=valid_novacal_body(), headers={"Authorization": "Bearer cli-token"})
        assert response.status_code == 200

        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
    assert "Traceback" not in stderr
    assert re.search(r'"PUT /v1/events/\S+ HTTP/1.1" 200', stderr)
