"""The NovaCal sandbox follows contracts/novacal.md: `PUT /v1/events/{id}`."""

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
    valid_novacal_body,
    with_patch,
)

NOVACAL_TOKEN = TOKENS["novacal"]
NOVACAL_DATA_KEYS = {
    "id", "start", "end", "canceled_at", "cancellation_reason", "location", "form_field_answers",
    "status", "name", "organizer", "hosts", "booker", "guests",
}  # fmt: skip
ORGANIZER_KEYS = {
    "first_name", "last_name", "name", "email", "username", "timezone", "time_format",
    "start_of_week", "avatar",
}  # fmt: skip
BOOKER_KEYS = {"name", "email", "timezone", "time_format"}


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


def test_novacal_rate_limit_fault_uses_the_envelope(novacal: SandboxProvider) -> None:
    arm_fault(novacal, status=429, retry_after=30)
    response = send_valid(novacal)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "30"
    assert response.json() == {"success": False, "message": "Rate limit exceeded"}
