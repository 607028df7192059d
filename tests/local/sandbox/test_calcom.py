"""The Cal.com sandbox speaks Cal.com's words (docs/providers/calcom.md): a move creates a new uid and
cancels the old booking; errors, texts, version fallback and throttler are Cal.com's own."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from local.sandbox import SandboxProvider, start_sandbox
from local.sandbox.bookings import (
    CALCOM_AWAITING_HOST_UID,
    CALCOM_BLOCKED_UID,
    CALCOM_CANCELLED_UID,
    CALCOM_RECURRING_UID,
    CALCOM_REJECTED_UID,
    CALCOM_SEAT_UIDS,
    CALCOM_SEATED_UID,
    CALCOM_UIDS,
)
from tests.local.sandbox.helpers import HTTP, MISSING, TOKENS, arm_fault, auth, booking, snapshot, with_patch

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


def assert_raw(response: httpx.Response, status: int, message: str) -> None:
    """An error Cal.com's booking library throws: Nest's raw body, exactly."""
    assert response.status_code == status, response.text
    assert response.json() == {"statusCode": status, "message": message}


def already_rescheduled(old: str, new: str) -> str:
    return (
        f"Can't reschedule booking with uid={old} because it has been cancelled and rescheduled already to "
        f"booking with uid={new}. You probably want to reschedule {new} instead by passing it within the "
        "request URL."
    )


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

    # A second move sent to a spent uid is refused, in Cal.com's words, naming its direct successor
    again = move(fresh, CALCOM_UIDS[0], {"start": "2031-09-12T12:00:00Z"})
    assert assert_error(again, 400, BAD_REQUEST) == already_rescheduled(CALCOM_UIDS[0], first["uid"])
    message = assert_error(move(fresh, first["uid"], {"start": "2031-09-12T12:00:00Z"}), 400, BAD_REQUEST)
    assert message == already_rescheduled(first["uid"], second["uid"])
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
    assert message == already_rescheduled(CALCOM_UIDS[3], new_uid)
    moved = read(fresh, new_uid).json()["data"]
    assert moved["start"] == "2031-10-01T09:00:00.000Z"
    assert moved["end"] == "2031-10-01T09:45:00.000Z"  # a 45-minute event type


def test_pending_booking_stays_pending_unless_the_host_moves_it(fresh: SandboxProvider) -> None:
    by_attendee = move(fresh, CALCOM_UIDS[2], {"start": "2031-09-10T12:00:00Z"}).json()["data"]
    assert by_attendee["status"] == "pending"
    by_host = move(fresh, by_attendee["uid"], {"start": "2031-09-10T13:00:00Z", "rescheduledBy": HOST_EMAIL})
    assert by_host.json()["data"]["status"] == "accepted"


def test_a_cancelled_booking_refuses_a_move_in_cals_words(calcom: SandboxProvider) -> None:
    before = booking(calcom, CALCOM_CANCELLED_UID)
    message = assert_error(move(calcom, CALCOM_CANCELLED_UID, NEW_START), 400, BAD_REQUEST)
    assert message == (
        f"Can't reschedule booking with uid={CALCOM_CANCELLED_UID} because it has been cancelled. "
        "Please provide uid of a booking that is not cancelled."
    )
    assert booking(calcom, CALCOM_CANCELLED_UID) == before


@pytest.mark.parametrize(
    ("uid", "status"), [(CALCOM_REJECTED_UID, "rejected"), (CALCOM_AWAITING_HOST_UID, "awaiting_host")]
)
def test_rejected_or_awaiting_host_bookings_are_a_raw_404(
    calcom: SandboxProvider, uid: str, status: str
) -> None:
    before = booking(calcom, uid)
    assert before["status"] == status
    assert_raw(move(calcom, uid, NEW_START), 404, "Could not find original booking")
    assert booking(calcom, uid) == before


def test_a_blocked_attendee_email_is_a_raw_403(calcom: SandboxProvider) -> None:
    before = booking(calcom, CALCOM_BLOCKED_UID)
    assert_raw(
        move(calcom, CALCOM_BLOCKED_UID, NEW_START), 403, "Cannot use this email to create the booking."
    )
    assert booking(calcom, CALCOM_BLOCKED_UID) == before


def test_a_taken_slot_and_the_past_are_raw_400s(fresh: SandboxProvider) -> None:
    taken = move(fresh, CALCOM_UIDS[0], {"start": "2031-06-02T15:00:00Z"})
    assert_raw(taken, 400, "User either already has booking at this time or is not available")
    assert_raw(
        move(fresh, CALCOM_UIDS[0], {"start": "2020-01-01T10:00:00Z"}),
        400,
        "Attempting to book a meeting in the past.",
    )
    assert booking(fresh, CALCOM_UIDS[0])["status"] == "accepted"


def test_seated_booking_moves_one_seat(fresh: SandboxProvider) -> None:
    without_seat = move(fresh, CALCOM_SEATED_UID, {"start": "2031-09-10T12:00:00Z"})
    assert assert_error(without_seat, 400, BAD_REQUEST).startswith(
        f"Booking with uid={CALCOM_SEATED_UID} is a seated booking which means you have to provide seatUid"
    )
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
def test_a_missing_or_unknown_version_falls_back_to_one_without_the_post_route(
    calcom: SandboxProvider, version: str | None
) -> None:
    headers = {"Authorization": f"Bearer {calcom.token}"}
    if version is not None:
        headers["cal-api-version"] = version
    path = f"/v2/bookings/{CALCOM_UIDS[4]}/reschedule"
    before = booking(calcom, CALCOM_UIDS[4])
    response = HTTP.post(calcom.url + path, json={"start": "2031-09-10T12:00:00Z"}, headers=headers)
    assert assert_error(response, 404, "NotFoundException") == f"Cannot POST {path}"
    assert booking(calcom, CALCOM_UIDS[4]) == before
    # and its GET answers the older shape, without Cal.com's envelope
    older = HTTP.get(f"{calcom.url}/v2/bookings/{CALCOM_UIDS[4]}", headers=headers)
    assert older.status_code == 200
    assert "status" in older.json()
    assert "startTime" in older.json()
    assert "data" not in older.json()


def test_both_documented_versions_are_accepted(fresh: SandboxProvider) -> None:
    first = move(fresh, CALCOM_UIDS[0], NEW_START, **{"cal-api-version": "2026-02-25"})
    assert first.status_code == 201
    second = move(fresh, CALCOM_UIDS[1], NEW_START, **{"cal-api-version": "2024-08-13"})
    assert second.status_code == 201


@pytest.mark.parametrize(
    "authorization", ["Bearer wrong", "bearer cal_sandbox_test_key_0002", "cal_sandbox_test_key_0002"]
)
def test_bad_credentials_are_401(calcom: SandboxProvider, authorization: str) -> None:
    headers = {"cal-api-version": "2024-08-13", "Authorization": authorization}
    url = f"{calcom.url}/v2/bookings/{CALCOM_UIDS[4]}/reschedule"
    message = assert_error(HTTP.post(url, json=NEW_START, headers=headers), 401, "UnauthorizedException")
    assert message == "ApiAuthStrategy - api key - Your api key is not valid"
    read_url = f"{calcom.url}/v2/bookings/{CALCOM_UIDS[4]}"
    assert_error(HTTP.get(read_url, headers=headers), 401, "UnauthorizedException")


def test_no_credentials_at_all_is_allowed_by_the_route(calcom: SandboxProvider) -> None:
    response = HTTP.get(
        f"{calcom.url}/v2/bookings/{CALCOM_UIDS[4]}", headers={"cal-api-version": "2024-08-13"}
    )
    assert response.status_code == 200


def test_unknown_uid_is_404(calcom: SandboxProvider) -> None:
    text = "Booking with uid=sandboxCalNoSuchBooking was not found in the database"
    assert assert_error(move(calcom, "sandboxCalNoSuchBooking", NEW_START), 404, "NotFoundException") == text
    assert assert_error(read(calcom, "sandboxCalNoSuchBooking"), 404, "NotFoundException") == text


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


def test_non_json_or_empty_body_is_body_is_required(calcom: SandboxProvider) -> None:
    headers = auth(calcom) | {"Content-Type": "text/plain"}
    url = f"{calcom.url}/v2/bookings/{CALCOM_UIDS[4]}/reschedule"
    response = HTTP.post(url, content='{"start": "2031-09-10T12:00:00Z"}', headers=headers)
    assert assert_error(response, 400, BAD_REQUEST) == "Body is required"
    assert assert_error(move(calcom, CALCOM_UIDS[4], {}), 400, BAD_REQUEST) == "Body is required"


def test_validation_texts_name_the_property(calcom: SandboxProvider) -> None:
    bad_start = move(calcom, CALCOM_UIDS[4], {"start": "2031-09-10"})
    assert assert_error(bad_start, 400, BAD_REQUEST).startswith("start property is wrong,")
    unknown = move(calcom, CALCOM_UIDS[4], {"start": "2031-09-10T12:00:00Z", "end": "x"})
    assert assert_error(unknown, 400, BAD_REQUEST) == "property end should not exist"


def test_rate_limit_fault_sends_the_default_throttler_headers_in_seconds(calcom: SandboxProvider) -> None:
    arm_fault(calcom, status=429, retry_after=42)
    response = move(calcom, CALCOM_UIDS[4], {"start": "2031-09-10T12:00:00Z"})
    message = assert_error(response, 429, "ThrottlerException")
    assert message == "CustomThrottlerGuard - Too many requests. Please try again later."
    assert response.headers["x-ratelimit-limit-default"] == "120"
    assert response.headers["x-ratelimit-remaining-default"] == "0"
    assert response.headers["x-ratelimit-reset-default"] == "42"  # seconds remaining, not a time
    assert "retry-after" not in response.headers


def test_throttler_is_a_fixed_window_counting_rejections_then_a_60_s_block(fresh: SandboxProvider) -> None:
    response = HTTP.post(f"{fresh.url}/_sandbox/limits", json={"per_minute": 3})
    assert response.status_code == 204
    answers = [read(fresh, CALCOM_UIDS[4]) for _ in range(5)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    assert [a.headers["x-ratelimit-remaining-default"] for a in answers] == ["2", "1", "0", "0", "0"]
    for admitted in answers[:3]:
        assert 0 < int(admitted.headers["x-ratelimit-reset-default"]) <= 60
    for refused in answers[3:]:
        assert "retry-after" not in refused.headers
        assert 59 <= int(refused.headers["x-ratelimit-reset-default"]) <= 60  # the key's 60 s block
    assert HTTP.get(f"{fresh.url}/_sandbox/limits").json()["rejected"] == 2


def test_a_slow_commit_raced_by_a_retry_is_a_raw_409_and_one_move(fresh: SandboxProvider) -> None:
    arm_fault(fresh, commit_delay_ms=1500)
    first: dict[str, httpx.Response] = {}
    racer = threading.Thread(
        target=lambda: first.setdefault("answer", move(fresh, CALCOM_UIDS[0], NEW_START))
    )
    racer.start()
    time.sleep(0.3)
    # While the first is committing, the booking still reads as it was, and a second move collides
    assert read(fresh, CALCOM_UIDS[0]).json()["data"]["status"] == "accepted"
    assert_raw(move(fresh, CALCOM_UIDS[0], NEW_START), 409, "booking_conflict_error")
    racer.join()
    assert first["answer"].status_code == 201
    moved = [b for b in snapshot(fresh) if b.get("rescheduledFromUid") == CALCOM_UIDS[0]]
    assert len(moved) == 1
    # Once committed, a third move hears "already rescheduled"
    third = move(fresh, CALCOM_UIDS[0], NEW_START)
    assert assert_error(third, 400, BAD_REQUEST) == already_rescheduled(CALCOM_UIDS[0], moved[0]["uid"])
