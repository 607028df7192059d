"""Cal.com and Acuity adapters: exact requests, credential shapes, error mapping, the changing uid."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from relay.command import RescheduleCommand
from relay.composition import build_adapters
from relay.errors import RelayError
from relay.providers.acuity import AcuityCredentials
from relay.providers.base import BookingIdProblem
from relay.providers.calcom import CalcomKey
from relay.providers.client import ProviderClient
from relay.settings import Settings

SETTINGS = Settings.model_validate(
    {
        "idempotency_table_name": "idem",
        "reschedules_table_name": "resch",
        "calcom_base_url": "https://calcom.invalid",
        "acuity_base_url": "https://acuity.invalid",
    }
)
ADAPTERS = build_adapters(SETTINGS)
CALCOM, ACUITY = ADAPTERS["calcom"], ADAPTERS["acuity"]
START = datetime(2027, 3, 14, 15, 0, tzinfo=UTC)  # 11:00 EDT: New York is already on summer time
CAL_KEY = CalcomKey.model_validate({"api_key": "cal_sandbox_key"})
ACUITY_KEY = AcuityCredentials.model_validate({"user_id": "10001", "api_key": "sandbox-acuity-key"})


def calcom_command(**update: Any) -> RescheduleCommand:
    fields: dict[str, Any] = {
        "provider": "calcom",
        "account": "default",
        "booking_id": "sandboxCalBooking00001",
        "start": START,
        "end": None,
        "timezone": "America/New_York",
    }
    return RescheduleCommand(**(fields | update))


def acuity_command(**update: Any) -> RescheduleCommand:
    fields: dict[str, Any] = {
        "provider": "acuity",
        "account": "default",
        "booking_id": "700001",
        "start": START,
        "end": None,
        "timezone": "America/New_York",
    }
    return RescheduleCommand(**(fields | update))


class Scripted:
    """A provider answering (method, path) from a script, recording every request."""

    def __init__(self, answers: dict[tuple[str, str], list[Any]]) -> None:
        self.answers = answers
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        queue = self.answers[(request.method, request.url.path)]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if answer == "drop":
            raise httpx.RemoteProtocolError("dropped", request=request)
        status, body = answer
        return httpx.Response(status, json=body)

    def client(self) -> ProviderClient:
        return ProviderClient(SETTINGS, ADAPTERS, transport=httpx.MockTransport(self), sleep=lambda _s: None)

    def moves(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == "POST"]


def booking(uid: str, start: str, **extra: Any) -> dict[str, Any]:
    data = {
        "id": 2001,
        "uid": uid,
        "start": start,
        "end": "2027-03-14T15:30:00.000Z",
        "duration": 30,
        "status": "accepted",
        "eventTypeId": 11,
        "attendees": [{"name": "Sandbox Attendee", "email": "sandbox-a@example.test", "timeZone": "UTC"}],
        "hosts": [{"email": "sandbox-host@example.test"}],
        "bookingFieldsResponses": {"email": "sandbox-a@example.test"},
    }
    return {"status": "success", "data": data | extra}


def calcom_error(message: str, status: int = 400) -> tuple[int, dict[str, Any]]:
    return status, {
        "status": "error",
        "timestamp": "2027-01-01T00:00:00.000Z",
        "path": "/v2/bookings/x/reschedule",
        "error": {"code": "BadRequestException", "message": message},
    }


OLD = "sandboxCalBooking00001"
NEW = "sbxcal0123456789abcdef"
READ_OLD = ("GET", f"/v2/bookings/{OLD}")
MOVE_OLD = ("POST", f"/v2/bookings/{OLD}/reschedule")
READ_NEW = ("GET", f"/v2/bookings/{NEW}")


# -- Cal.com ---------------------------------------------------------------------------------------


def test_calcom_request_is_post_with_version_header_utc_start_and_optional_fields() -> None:
    cmd = calcom_command(reason="Client asked", rescheduled_by="host@example.test")
    request = CALCOM.build_request(cmd)
    assert (request.method, request.path) == ("POST", f"/v2/bookings/{OLD}/reschedule")
    assert request.json == {
        "start": "2027-03-14T15:00:00Z",
        "reschedulingReason": "Client asked",
        "rescheduledBy": "host@example.test",
    }
    assert dict(request.headers) == {"cal-api-version": "2024-08-13"}
    assert CALCOM.build_request(calcom_command()).json == {"start": "2027-03-14T15:00:00Z"}
    later = build_adapters(SETTINGS.model_copy(update={"calcom_api_version": "2026-02-25"}))["calcom"]
    assert later.build_request(cmd).headers["cal-api-version"] == "2026-02-25"


def test_calcom_move_reads_then_posts_with_bearer_and_returns_the_new_uid_trimmed() -> None:
    provider = Scripted(
        {
            READ_OLD: [(200, booking(OLD, "2027-03-10T15:00:00.000Z"))],
            MOVE_OLD: [(201, booking(NEW, "2027-03-14T15:00:00.000Z", rescheduledFromUid=OLD))],
        }
    )
    reply = provider.client().move(CALCOM, calcom_command(), CAL_KEY)
    assert [(r.method, str(r.url)) for r in provider.requests] == [
        ("GET", f"https://calcom.invalid/v2/bookings/{OLD}"),
        ("POST", f"https://calcom.invalid/v2/bookings/{OLD}/reschedule"),
    ]
    post = provider.requests[1]
    assert post.headers["authorization"] == "Bearer cal_sandbox_key"
    assert post.headers["cal-api-version"] == "2024-08-13"
    assert post.headers["content-type"] == "application/json"
    assert json.loads(post.content) == {"start": "2027-03-14T15:00:00Z"}
    assert CALCOM.new_booking_id(reply.body) == NEW
    summary = CALCOM.summarise(reply.body)
    assert summary["uid"] == NEW
    assert summary["rescheduledFromUid"] == OLD
    assert "example.test" not in json.dumps(summary)  # no attendee, host or response data


def already_rescheduled(old: str, new: str) -> tuple[int, dict[str, Any]]:
    """Cal.com's 400 for a spent uid, word for word (its bookings service)."""
    return calcom_error(
        f"Can't reschedule booking with uid={old} because it has been cancelled and rescheduled already "
        f"to booking with uid={new}. You probably want to reschedule {new} instead by passing it within "
        "the request URL."
    )


def moved_away(start: str = "2027-03-10T15:00:00.000Z") -> dict[str, Any]:
    return booking(OLD, start, status="cancelled", rescheduledToUid=NEW)


def test_calcom_lost_answer_is_read_not_resent_one_move_and_the_new_uid() -> None:
    provider = Scripted(
        {
            READ_OLD: [(200, booking(OLD, "2027-03-10T15:00:00.000Z")), (200, moved_away())],
            MOVE_OLD: ["drop", (201, booking("sbxcalSecondMove000000", "2027-03-14T15:00:00.000Z"))],
            READ_NEW: [(200, booking(NEW, "2027-03-14T15:00:00.000Z"))],
        }
    )
    reply = provider.client().move(CALCOM, calcom_command(), CAL_KEY)
    assert CALCOM.new_booking_id(reply.body) == NEW
    assert len(provider.moves()) == 1  # the POST was never sent again: the reads showed the move
    assert [(r.method, r.url.path) for r in provider.requests[-2:]] == [READ_OLD, READ_NEW]


def test_calcom_conflict_409_raw_body_is_settled_by_reading() -> None:
    provider = Scripted(
        {
            READ_OLD: [(200, booking(OLD, "2027-03-10T15:00:00.000Z")), (200, moved_away())],
            MOVE_OLD: [(409, {"statusCode": 409, "message": "booking_conflict_error"})],
            READ_NEW: [(200, booking(NEW, "2027-03-14T15:00:00.000Z"))],
        }
    )
    reply = provider.client().move(CALCOM, calcom_command(), CAL_KEY)
    assert CALCOM.new_booking_id(reply.body) == NEW
    assert len(provider.moves()) == 1


def test_calcom_conflict_while_the_first_move_still_commits_is_read_again_never_resent() -> None:
    # The 409 says a move is in flight: a read that shows nothing moved yet waits and reads again.
    provider = Scripted(
        {
            READ_OLD: [
                (200, booking(OLD, "2027-03-10T15:00:00.000Z")),
                (200, booking(OLD, "2027-03-10T15:00:00.000Z")),
                (200, booking(OLD, "2027-03-10T15:00:00.000Z")),
                (200, moved_away()),
            ],
            MOVE_OLD: [(409, {"statusCode": 409, "message": "booking_conflict_error"})],
            READ_NEW: [(200, booking(NEW, "2027-03-14T15:00:00.000Z"))],
        }
    )
    reply = provider.client().move(CALCOM, calcom_command(), CAL_KEY)
    assert CALCOM.new_booking_id(reply.body) == NEW
    assert len(provider.moves()) == 1
    assert [r.method for r in provider.requests] == ["GET", "POST", "GET", "GET", "GET", "GET"]


def test_calcom_slow_commit_then_already_rescheduled_400_triggers_a_read_and_is_one_success() -> None:
    # The first read after the drop still sees the booking in place (the commit is slow); the second
    # POST then hears Cal.com's "already rescheduled" 400, which only makes the relay read again.
    provider = Scripted(
        {
            READ_OLD: [
                (200, booking(OLD, "2027-03-10T15:00:00.000Z")),
                (200, booking(OLD, "2027-03-10T15:00:00.000Z")),
                (200, moved_away()),
            ],
            MOVE_OLD: ["drop", already_rescheduled(OLD, NEW)],
            READ_NEW: [(200, booking(NEW, "2027-03-14T15:00:00.000Z"))],
        }
    )
    reply = provider.client().move(CALCOM, calcom_command(), CAL_KEY)
    assert CALCOM.new_booking_id(reply.body) == NEW
    assert len(provider.moves()) == 2  # the second was refused by Cal.com: one move happened


def test_calcom_already_rescheduled_to_another_time_is_booking_moved_elsewhere() -> None:
    provider = Scripted(
        {
            READ_OLD: [(200, booking(OLD, "2027-03-10T15:00:00.000Z")), (200, moved_away())],
            MOVE_OLD: ["drop"],
            READ_NEW: [(200, booking(NEW, "2027-03-20T09:00:00.000Z"))],
        }
    )
    with pytest.raises(RelayError) as caught:
        provider.client().move(CALCOM, calcom_command(), CAL_KEY)
    assert (caught.value.status, caught.value.code) == (409, "booking_moved_elsewhere")
    assert caught.value.problem()["new_booking_id"] == NEW
    assert len(provider.moves()) == 1


def test_calcom_already_rescheduled_to_undefined_with_no_successor_is_not_guessed() -> None:
    provider = Scripted(
        {
            READ_OLD: [
                (200, booking(OLD, "2027-03-10T15:00:00.000Z")),
                (200, booking(OLD, "2027-03-10T15:00:00.000Z", status="cancelled")),
            ],
            MOVE_OLD: [already_rescheduled(OLD, "undefined")],
        }
    )
    with pytest.raises(RelayError) as caught:
        provider.client().move(CALCOM, calcom_command(), CAL_KEY)
    assert (caught.value.status, caught.value.code) == (409, "booking_moved_elsewhere")
    assert len(provider.moves()) == 1


@pytest.mark.parametrize(
    ("read", "code"),
    [
        (booking(OLD, "2027-03-10T15:00:00.000Z", status="cancelled"), "booking_not_reschedulable"),
        (booking(OLD, "2027-03-10T15:00:00.000Z", recurringBookingUid="series1"), "booking_recurring"),
        (
            booking(OLD, "2027-03-10T15:00:00.000Z", attendees=[{"seatUid": "seat1", "email": "a@x.test"}]),
            "booking_seated",
        ),
    ],
)
def test_calcom_bookings_the_relay_cannot_move_are_refused_before_any_move(
    read: dict[str, Any], code: str
) -> None:
    provider = Scripted({READ_OLD: [(200, read)], MOVE_OLD: [(201, booking(NEW, "x"))]})
    with pytest.raises(RelayError) as caught:
        provider.client().move(CALCOM, calcom_command(), CAL_KEY)
    assert (caught.value.status, caught.value.code) == (422, code)
    assert caught.value.errors[0].field == "booking_id"
    assert provider.moves() == []


def test_calcom_400_for_a_cancelled_booking_is_a_422_naming_the_booking() -> None:
    provider = Scripted(
        {
            READ_OLD: [(200, booking(OLD, "2027-03-10T15:00:00.000Z"))],  # cancelled in between
            MOVE_OLD: [
                calcom_error(
                    f"Can't reschedule booking with uid={OLD} because it has been cancelled. "
                    "Please provide uid of a booking that is not cancelled."
                )
            ],
        }
    )
    with pytest.raises(RelayError) as caught:
        provider.client().move(CALCOM, calcom_command(), CAL_KEY)
    problem = caught.value.problem()
    assert (problem["status"], problem["code"]) == (422, "booking_not_reschedulable")
    assert "cancelled" in problem["detail"]
    assert problem["errors"][0]["field"] == "booking_id"


def test_calcom_field_errors_map_from_the_envelope() -> None:
    _, body = calcom_error("start property is wrong,start must be a valid ISO 8601 date string ")
    assert [(p.field, p.code) for p in CALCOM.field_errors(body)] == [("start", "provider_rejected")]
    _, body = calcom_error("rescheduledBy must be an email")
    assert CALCOM.field_errors(body)[0].field == "rescheduled_by"


def test_calcom_uids_are_path_safe() -> None:
    assert CALCOM.normalise_booking_id("aB3_x-9") == "aB3_x-9"
    for bad in ("../x", "a/b", "a b", "-lead", "x" * 65):
        with pytest.raises(BookingIdProblem):
            CALCOM.normalise_booking_id(bad)


# -- Acuity ----------------------------------------------------------------------------------------


def test_acuity_request_is_put_with_the_zone_offset_at_that_instant() -> None:
    summer = ACUITY.build_request(acuity_command())
    assert (summer.method, summer.path) == ("PUT", "/api/v1/appointments/700001/reschedule")
    # 14 March 2027 is after New York's DST start (the 2nd Sunday of March): -0400, not -0500.
    assert summer.json == {"datetime": "2027-03-14T11:00:00-0400", "timezone": "America/New_York"}
    winter = ACUITY.build_request(acuity_command(start=datetime(2027, 3, 13, 15, 0, tzinfo=UTC)))
    assert winter.json is not None
    assert winter.json["datetime"] == "2027-03-13T10:00:00-0500"
    berlin = ACUITY.build_request(acuity_command(timezone="Europe/Berlin"))
    assert berlin.json == {"datetime": "2027-03-14T16:00:00+0100", "timezone": "Europe/Berlin"}


def test_acuity_sends_http_basic_and_the_account_flags_as_query_parameters() -> None:
    provider = Scripted(
        {("PUT", "/api/v1/appointments/700001/reschedule"): [(200, {"id": 700001, "email": "x@y.test"})]}
    )
    flagged = AcuityCredentials.model_validate(
        {"user_id": 10001, "api_key": "sandbox-acuity-key", "admin": True, "no_email": True}
    )
    provider.client().move(ACUITY, acuity_command(), ACUITY_KEY)
    provider.client().move(ACUITY, acuity_command(), flagged)
    plain, admin = provider.requests
    expected = "Basic " + base64.b64encode(b"10001:sandbox-acuity-key").decode()
    assert plain.headers["authorization"] == expected == admin.headers["authorization"]
    assert str(plain.url) == "https://acuity.invalid/api/v1/appointments/700001/reschedule"
    assert dict(admin.url.params) == {"admin": "true", "noEmail": "true"}
    assert json.loads(plain.content) == {
        "datetime": "2027-03-14T11:00:00-0400",
        "timezone": "America/New_York",
    }


@pytest.mark.parametrize(
    "secret",
    [{"api_key": "sandbox-k"}, {"user_id": "", "api_key": "sandbox-k"}, {"user_id": "abc", "api_key": "k"}],
)
def test_acuity_secret_without_a_numeric_user_id_is_refused_naming_no_value(secret: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as caught:
        AcuityCredentials.model_validate(secret)
    assert "sandbox-k" not in str(caught.value)


@pytest.mark.parametrize(
    ("code", "field"),
    [
        ("required_datetime", "start"),
        ("invalid_datetime", "start"),
        ("not_available", "start"),
        ("not_available_min_hours_in_advance", "start"),
        ("not_available_max_days_in_advance", "start"),
        ("reschedule_too_close", "start"),
        ("invalid_timezone", "timezone"),
        ("reschedule_not_allowed", "booking_id"),
        ("reschedule_series", "booking_id"),
        ("reschedule_canceled", "booking_id"),
        ("invalid_calendar", "booking_id"),
    ],
)
def test_acuity_400_codes_map_to_field_problems(code: str, field: str) -> None:
    provider = Scripted(
        {
            ("PUT", "/api/v1/appointments/700001/reschedule"): [
                (400, {"status_code": 400, "message": "Acuity says no.", "error": code})
            ]
        }
    )
    with pytest.raises(RelayError) as caught:
        provider.client().move(ACUITY, acuity_command(), ACUITY_KEY)
    assert (caught.value.status, caught.value.code) == (422, "provider_rejected")
    assert [(p.field, p.code) for p in caught.value.errors] == [(field, code)]


def test_acuity_summary_drops_names_emails_phones_and_forms() -> None:
    answer = {
        "id": 700001,
        "firstName": "Sandbox",
        "lastName": "Client",
        "email": "sandbox-client@example.test",
        "phone": "555-0100",
        "datetime": "2027-03-14T11:00:00-0400",
        "timezone": "America/New_York",
        "duration": "30",
        "calendarID": 1,
        "forms": [{"values": [{"value": "private"}]}],
    }
    assert ACUITY.summarise(answer) == {
        "id": 700001,
        "datetime": "2027-03-14T11:00:00-0400",
        "timezone": "America/New_York",
        "duration": "30",
        "calendarID": 1,
    }
