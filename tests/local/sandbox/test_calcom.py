"""The Cal.com sandbox follows contracts/calcom.md: a move creates a new uid and cancels the old booking."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from local.sandbox import SandboxProvider, start_sandbox
from local.sandbox.bookings import (
    CALCOM_AWAITING_HOST_UID,
    CALCOM_CANCELLED_UID,
    CALCOM_RECURRING_UID,
    CALCOM_REJECTED_UID,
    CALCOM_SEAT_UIDS,
    CALCOM_SEATED_UID,
    CALCOM_UIDS,
)
from tests.local.sandbox.helpers import HTTP, MISSING, TOKENS, arm_fault, auth, booking, with_patch

ENVELOPE_KEYS = {"status", "timestamp", "path", "error"}
NEW_BOOKING_KEYS = {
    "id", "uid", "start", "end", "duration", "status", "eventTypeId", "hosts", "attendees", "location",
    "metadata", "createdAt", "reschedulingReason", "rescheduledByEmail", "rescheduledFromUid",
}  # fmt: skip
HOST_EMAIL = "sandbox-host@example.test"
BAD_REQUEST = "BadRequestException"
NEW_START = {"start": "2031-09-10T12:00:00Z"}


@pytest.fixture
def fresh() -> Iterator[SandboxProvider]:
    """A Cal.com sandbox with its seeds untouched (moves are one-way: the old uid is spent)."""
    with start_sandbox("calcom", token=TOKENS["calcom"]) as sandbox:
        yield sandbox


def move(provider: SandboxProvider, uid: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    all_headers = {key: value for key, value in (auth(provider) | headers).items() if value}
    return HTTP.post(f"{provider.url}/v2/bookings/{uid}/reschedule", json=body, headers=all_headers)


def read(provider: SandboxProvider, uid: str) -> httpx.Response:
    return HTTP.get(f"{provider.url}/v2/bookings/{uid}", headers=auth(provider))


def assert_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    payload = response.json()
    assert set(payload) == ENVELOPE_KEYS
    assert payload["status"] == "error"
    assert payload["timestamp"].endswith("Z")
    assert set(payload["error"]) == {"code", "message"}
    assert payload["error"]["code"] == code
    message: str = payload["error"]["message"]
    assert message
    return message


def test_move_creates_a_new_booking_and_cancels_the_old_one(fresh: SandboxProvider) -> None:
    # Given a seeded 60-minute booking
    old_uid = CALCOM_UIDS[1]
    body = {
        "start": "2031-09-10T12:00:00Z",
        "rescheduledBy": "sandbox-attendee-2@example.test",
        "reschedulingReason": "Attendee asked to move",
    }

    # When it is moved
    response = move(fresh, old_uid, body)

    # Then the answer is 201 with the new booking: new uid, end from the event type's length
    assert response.status_code == 201
    payload = response.json()
    assert set(payload) == {"status", "data"}
    assert payload["status"] == "success"
    data = payload["data"]
    assert set(data) >= NEW_BOOKING_KEYS
    assert data["uid"] != old_uid
    assert data["start"] == "2031-09-10T12:00:00.000Z"
    assert data["end"] == "2031-09-10T13:00:00.000Z"
    assert data["duration"] == 60
    assert data["status"] == "accepted"
    assert data["rescheduledFromUid"] == old_uid
    assert data["reschedulingReason"] == "Attendee asked to move"
    assert data["rescheduledByEmail"] == "sandbox-attendee-2@example.test"
    assert all(a["email"].endswith("@example.test") for a in data["attendees"])
    # and the old booking is cancelled, pointing at the new one
    old = read(fresh, old_uid).json()["data"]
    assert old["status"] == "cancelled"
    assert old["rescheduledToUid"] == data["uid"]
    new = read(fresh, data["uid"])
    assert new.status_code == 200
    assert new.json()["data"]["start"] == data["start"]
    assert new.json()["data"]["rescheduledToUid"] is None


def test_each_move_makes_another_uid_and_the_old_uid_names_the_latest(fresh: SandboxProvider) -> None:
    first = move(fresh, CALCOM_UIDS[0], {"start": "2031-09-10T12:00:00Z"}).json()["data"]
    second = move(fresh, first["uid"], {"start": "2031-09-11T12:00:00Z"}).json()["data"]
    assert len({CALCOM_UIDS[0], first["uid"], second["uid"]}) == 3
    assert second["end"] == "2031-09-11T12:30:00.000Z"  # a 30-minute event type

    # A second move sent to a spent uid is refused with the uid it was moved to
    again = move(fresh, CALCOM_UIDS[0], {"start": "2031-09-12T12:00:00Z"})
    message = assert_error(again, 400, BAD_REQUEST)
    assert first["uid"] in message
    message = assert_error(move(fresh, first["uid"], {"start": "2031-09-12T12:00:00Z"}), 400, BAD_REQUEST)
    assert second["uid"] in message
    assert read(fresh, second["uid"]).json()["data"]["start"] == "2031-09-11T12:00:00.000Z"


def test_after_commit_drop_then_retry_sees_already_rescheduled(fresh: SandboxProvider) -> None:
    # The unknown outcome: the move happens, the answer never arrives
    arm_fault(fresh, drop_connection=True, after_commit=True, times=1)
    with pytest.raises(httpx.TransportError):
        move(fresh, CALCOM_UIDS[3], {"start": "2031-10-01T09:00:00Z"})

    # The retry gets 400 naming the new uid, and reading that uid shows the requested time
    retry = move(fresh, CALCOM_UIDS[3], {"start": "2031-10-01T09:00:00Z"})
    message = assert_error(retry, 400, BAD_REQUEST)
    new_uid = read(fresh, CALCOM_UIDS[3]).json()["data"]["rescheduledToUid"]
    assert new_uid is not None
    assert new_uid in message
    moved = read(fresh, new_uid).json()["data"]
    assert moved["start"] == "2031-10-01T09:00:00.000Z"
    assert moved["end"] == "2031-10-01T09:45:00.000Z"  # a 45-minute event type


def test_pending_booking_stays_pending_unless_the_host_moves_it(fresh: SandboxProvider) -> None:
    by_attendee = move(fresh, CALCOM_UIDS[2], {"start": "2031-09-10T12:00:00Z"}).json()["data"]
    assert by_attendee["status"] == "pending"
    by_host = move(fresh, by_attendee["uid"], {"start": "2031-09-10T13:00:00Z", "rescheduledBy": HOST_EMAIL})
    assert by_host.json()["data"]["status"] == "accepted"


@pytest.mark.parametrize(
    ("uid", "status"),
    [
        (CALCOM_CANCELLED_UID, "cancelled"),
        (CALCOM_REJECTED_UID, "rejected"),
        (CALCOM_AWAITING_HOST_UID, "awaiting_host"),
    ],
)
def test_bookings_that_are_not_accepted_or_pending_refuse_a_move(
    calcom: SandboxProvider, uid: str, status: str
) -> None:
    before = booking(calcom, uid)
    assert before["status"] == status
    message = assert_error(move(calcom, uid, {"start": "2031-09-10T12:00:00Z"}), 400, BAD_REQUEST)
    assert status in message
    assert booking(calcom, uid) == before


def test_seated_booking_moves_one_seat(fresh: SandboxProvider) -> None:
    without_seat = move(fresh, CALCOM_SEATED_UID, {"start": "2031-09-10T12:00:00Z"})
    assert "seatUid" in assert_error(without_seat, 400, BAD_REQUEST)
    with_reason = {"start": "2031-09-10T12:00:00Z", "seatUid": CALCOM_SEAT_UIDS[0], "reschedulingReason": "x"}
    assert_error(move(fresh, CALCOM_SEATED_UID, with_reason), 400, BAD_REQUEST)
    unknown_seat = {"start": "2031-09-10T12:00:00Z", "seatUid": "sandboxCalSeatUnknown1"}
    assert_error(move(fresh, CALCOM_SEATED_UID, unknown_seat), 400, BAD_REQUEST)

    moved = move(fresh, CALCOM_SEATED_UID, {"start": "2031-09-10T12:00:00Z", "seatUid": CALCOM_SEAT_UIDS[0]})
    assert moved.status_code == 201
    data = moved.json()["data"]
    assert [a["seatUid"] for a in data["attendees"]] == [CALCOM_SEAT_UIDS[0]]
    old = read(fresh, CALCOM_SEATED_UID).json()["data"]
    assert old["status"] == "accepted"  # the other seat stays
    assert [a["seatUid"] for a in old["attendees"]] == [CALCOM_SEAT_UIDS[1]]


def test_seat_uid_on_a_plain_booking_is_refused(calcom: SandboxProvider) -> None:
    body = {"start": "2031-09-10T12:00:00Z", "seatUid": CALCOM_SEAT_UIDS[0]}
    assert_error(move(calcom, CALCOM_UIDS[4], body), 400, BAD_REQUEST)


def test_recurring_booking_answers_with_an_array(fresh: SandboxProvider) -> None:
    response = move(fresh, CALCOM_RECURRING_UID, {"start": "2031-09-10T12:00:00Z"})
    assert response.status_code == 201
    data = response.json()["data"]
    assert isinstance(data, list)
    assert len(data) == 1
    assert data[0]["recurringBookingUid"]
    assert data[0]["rescheduledFromUid"] == CALCOM_RECURRING_UID


@pytest.mark.parametrize(
    "patch",
    [
        {"start": MISSING},
        {"start": "2031-09-10T12:00:00"},
        {"start": "2031-09-10T12:00:00+02:00"},
        {"start": "2031-09-10"},
        {"start": "2031-02-30T12:00:00Z"},
        {"start": 1946822400},
        {"rescheduledBy": "not-an-email"},
        {"rescheduledBy": 7},
        {"reschedulingReason": ["a"]},
        {"end": "2031-09-10T12:30:00Z"},
        {"duration": 30},
        {"timeZone": "Europe/Berlin"},
    ],
)
def test_invalid_bodies_are_400_and_move_nothing(calcom: SandboxProvider, patch: dict[str, Any]) -> None:
    uid = CALCOM_UIDS[4]
    before = booking(calcom, uid)
    body = with_patch({"start": "2031-09-10T12:00:00Z"}, patch)
    assert_error(move(calcom, uid, body), 400, BAD_REQUEST)
    assert booking(calcom, uid) == before


@pytest.mark.parametrize("version", [None, "2024-04-15", "2024-08-14", ""])
def test_version_header_is_required(calcom: SandboxProvider, version: str | None) -> None:
    headers = {"Authorization": f"Bearer {calcom.token}"}
    if version is not None:
        headers["cal-api-version"] = version
    url = f"{calcom.url}/v2/bookings/{CALCOM_UIDS[4]}/reschedule"
    response = HTTP.post(url, json={"start": "2031-09-10T12:00:00Z"}, headers=headers)
    assert "cal-api-version" in assert_error(response, 400, BAD_REQUEST)


def test_both_documented_versions_are_accepted(fresh: SandboxProvider) -> None:
    first = move(fresh, CALCOM_UIDS[0], NEW_START, **{"cal-api-version": "2026-02-25"})
    assert first.status_code == 201
    second = move(fresh, CALCOM_UIDS[1], NEW_START, **{"cal-api-version": "2024-08-13"})
    assert second.status_code == 201


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong", "bearer cal_sandbox_test_key_0002", "cal_sandbox_test_key_0002"]
)
def test_bad_credentials_are_401(calcom: SandboxProvider, authorization: str | None) -> None:
    headers = {"cal-api-version": "2024-08-13"} | ({"Authorization": authorization} if authorization else {})
    url = f"{calcom.url}/v2/bookings/{CALCOM_UIDS[4]}/reschedule"
    assert_error(HTTP.post(url, json=NEW_START, headers=headers), 401, "UnauthorizedException")
    read_url = f"{calcom.url}/v2/bookings/{CALCOM_UIDS[4]}"
    assert_error(HTTP.get(read_url, headers=headers), 401, "UnauthorizedException")


def test_unknown_uid_is_404(calcom: SandboxProvider) -> None:
    assert_error(move(calcom, "sandboxCalNoSuchBooking", NEW_START), 404, "NotFoundException")
    assert_error(read(calcom, "sandboxCalNoSuchBooking"), 404, "NotFoundException")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/v2/bookings/{uid}/reschedule"),
        ("PATCH", "/v2/bookings/{uid}"),
        ("POST", "/v1/bookings/{uid}"),
    ],
)
def test_other_routes_are_404_in_the_envelope(calcom: SandboxProvider, method: str, path: str) -> None:
    url = calcom.url + path.format(uid=CALCOM_UIDS[4])
    response = HTTP.request(method, url, json={"start": "2031-09-10T12:00:00Z"}, headers=auth(calcom))
    assert_error(response, 404, "NotFoundException")


def test_non_json_body_is_400(calcom: SandboxProvider) -> None:
    headers = auth(calcom) | {"Content-Type": "text/plain"}
    url = f"{calcom.url}/v2/bookings/{CALCOM_UIDS[4]}/reschedule"
    response = HTTP.post(url, content='{"start": "2031-09-10T12:00:00Z"}', headers=headers)
    assert_error(response, 400, BAD_REQUEST)


def test_rate_limit_fault_sends_the_default_throttler_headers(calcom: SandboxProvider) -> None:
    arm_fault(calcom, status=429)
    response = move(calcom, CALCOM_UIDS[4], {"start": "2031-09-10T12:00:00Z"})
    assert_error(response, 429, "ThrottlerException")
    assert response.headers["x-ratelimit-limit-default"] == "120"
    assert response.headers["x-ratelimit-remaining-default"] == "0"
    assert int(response.headers["x-ratelimit-reset-default"]) >= int(time.time())
    assert "retry-after" not in response.headers  # the contract: do not rely on it
