"""Settling unknown outcomes by reading, and how provider answers are classified.

Texts are the providers' own (Cal.com's API v2 code, Acuity's API reference; docs/providers/).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from relay.command import RescheduleCommand
from relay.composition import build_adapters
from relay.deadline import Deadline
from relay.errors import RelayError
from relay.providers.acuity import AcuityCredentials
from relay.providers.base import BearerKey, BookingState, OutboundRequest, Settled, Settlement
from relay.providers.calcom import CalcomKey
from relay.providers.client import (
    MAX_JSON_DEPTH,
    MAX_RESPONSE_BYTES,
    MAX_RETRY_AFTER_SECONDS,
    ProviderClient,
    ProviderError,
    parse_json,
    retry_after_seconds,
)
from relay.providers.pacing import Pacing
from relay.providers.settle import settle
from relay.settings import Settings

SETTINGS = Settings.model_validate(
    {
        "idempotency_table_name": "idem",
        "reschedules_table_name": "resch",
        "calcom_base_url": "https://calcom.invalid",
        "acuity_base_url": "https://acuity.invalid",
        "iclosed_base_url": "https://iclosed.invalid",
    }
)
ADAPTERS = build_adapters(SETTINGS)
CALCOM, ACUITY, ICLOSED = ADAPTERS["calcom"], ADAPTERS["acuity"], ADAPTERS["iclosed"]
START = datetime(2027, 3, 14, 15, 0, tzinfo=UTC)
OLD, NEW = "sandboxCalBooking00001", "sbxcal0123456789abcdef"
CAL_KEY = CalcomKey.model_validate({"api_key": "cal_sandbox_key"})
ACUITY_KEY = AcuityCredentials.model_validate({"user_id": "10001", "api_key": "sandbox-acuity-key"})
ICLOSED_KEY = BearerKey.model_validate({"api_key": "iclosed-sandbox"})
ALREADY = (
    f"Can't reschedule booking with uid={OLD} because it has been cancelled and rescheduled already to "
    f"booking with uid={NEW}. You probably want to reschedule {NEW} instead by passing it within the "
    "request URL."
)
CANCELLED = (
    f"Can't reschedule booking with uid={OLD} because it has been cancelled. Please provide uid of a "
    "booking that is not cancelled."
)


def command(provider: str = "calcom", booking_id: str = OLD) -> RescheduleCommand:
    return RescheduleCommand(
        provider=provider, account="default", booking_id=booking_id, start=START, end=None, timezone="UTC"
    )


def envelope(message: str, code: str = "BadRequestException") -> dict[str, Any]:
    return {
        "status": "error",
        "timestamp": "2027-01-01T00:00:00.000Z",
        "path": f"/v2/bookings/{OLD}/reschedule",
        "error": {"code": code, "message": message},
    }


def raw(status: int, message: str) -> dict[str, Any]:
    return {"statusCode": status, "message": message}


class Answers:
    """A provider that answers every request with the next scripted answer, recording the requests."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):
            return answer
        status, body = answer
        return httpx.Response(status, json=body)

    def client(self) -> ProviderClient:
        return ProviderClient(SETTINGS, ADAPTERS, transport=httpx.MockTransport(self), sleep=lambda _s: None)


# -- settle: pure decisions from reads ---------------------------------------------------------------


def cal_state(**fields: Any) -> BookingState:
    defaults: dict[str, Any] = {"booking_id": OLD, "start": START - timedelta(days=3)}
    return BookingState(**(defaults | fields))


def calcom_read(uid: str = OLD) -> OutboundRequest:
    request = CALCOM.read_request(uid)
    assert request is not None
    return request


@pytest.mark.parametrize(
    ("state", "successor", "expected"),
    [
        # Still accepted under its uid: every Cal.com move gives a new uid, so nothing moved.
        (cal_state(status="accepted"), None, Settlement(Settled.NOT_MOVED)),
        (cal_state(active=False, rescheduled_to=NEW), None, Settlement(Settled.READ_NEXT, NEW)),
        (
            cal_state(active=False, rescheduled_to=NEW),
            BookingState(NEW, start=START),
            Settlement(Settled.MOVED, NEW),
        ),
        (
            cal_state(active=False, rescheduled_to=NEW),
            BookingState(NEW, start=START + timedelta(hours=1)),
            Settlement(Settled.MOVED_ELSEWHERE, NEW),
        ),
        (
            cal_state(active=False, rescheduled_to=NEW),
            BookingState(NEW, found=False),
            Settlement(Settled.UNKNOWN),
        ),
        # Cancelled with no successor named: maybe a move Cal.com cannot link ("uid=undefined").
        (cal_state(active=False, status="cancelled"), None, Settlement(Settled.UNKNOWN)),
        (BookingState(OLD, found=False), None, Settlement(Settled.UNKNOWN)),
        (cal_state(recurring=True), None, Settlement(Settled.UNKNOWN)),
    ],
)
def test_calcom_settles_from_the_old_uid_then_its_successor(
    state: BookingState, successor: BookingState | None, expected: Settlement
) -> None:
    assert settle(CALCOM, command(), state, successor) == expected


def test_settle_refuses_a_successor_read_of_another_booking() -> None:
    with pytest.raises(ValueError, match="successor"):
        settle(CALCOM, command(), cal_state(rescheduled_to=NEW), BookingState("someOtherUid", start=START))


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (BookingState("700001", start=START), Settlement(Settled.MOVED, "700001")),
        # The same instant in another offset is the same start.
        (
            BookingState("700001", start=datetime.fromisoformat("2027-03-14T11:00:00-0400")),
            Settlement(Settled.MOVED, "700001"),
        ),
        (BookingState("700001", start=START - timedelta(days=1)), Settlement(Settled.NOT_MOVED)),
        (BookingState("700001", start=START, active=False), Settlement(Settled.NOT_MOVED)),
        (BookingState("700001", start=None), Settlement(Settled.NOT_MOVED)),
        (BookingState("700001", found=False), Settlement(Settled.UNKNOWN)),
    ],
)
def test_acuity_settles_by_the_appointment_being_at_the_requested_datetime(
    state: BookingState, expected: Settlement
) -> None:
    assert settle(ACUITY, command("acuity", "700001"), state) == expected


def test_providers_that_move_to_a_target_state_have_no_read_and_repeat_harmlessly() -> None:
    for name in ("iclosed", "novacal"):
        adapter = ADAPTERS[name]
        assert (adapter.has_read, adapter.repeat_is_harmless) == (False, True)
        assert adapter.read_request("1") is None
        assert settle(adapter, command(name, "1"), BookingState("1", start=START)).outcome is Settled.UNKNOWN
    for adapter in (CALCOM, ACUITY):
        assert (adapter.has_read, adapter.repeat_is_harmless) == (True, False)


# -- reading a booking ---------------------------------------------------------------------------------


def test_calcom_read_gives_state_from_the_real_shape() -> None:
    body = {
        "status": "success",
        "data": {
            "uid": OLD,
            "status": "cancelled",
            "start": "2027-03-10T15:00:00.000Z",
            "rescheduledToUid": NEW,
            "attendees": [{"email": "sandbox-a@example.test"}],
        },
    }
    provider = Answers((200, body))
    read = provider.client().read_booking(CALCOM, OLD, CAL_KEY)
    assert read.state == BookingState(
        OLD,
        active=False,
        start=datetime(2027, 3, 10, 15, tzinfo=UTC),
        status="cancelled",
        rescheduled_to=NEW,
    )
    sent = provider.requests[0]
    assert (sent.method, sent.url.path, sent.headers["cal-api-version"]) == (
        "GET",
        f"/v2/bookings/{OLD}",
        "2024-08-13",
    )


def test_calcom_series_read_is_an_array_and_a_404_is_not_found() -> None:
    assert CALCOM.booking_state("series", {"status": "success", "data": [{"uid": "a"}]}).recurring
    missing = Answers(
        (404, envelope(f"Booking with uid={OLD} was not found in the database", "NotFoundException"))
    )
    assert missing.client().read_booking(CALCOM, OLD, CAL_KEY).state == BookingState(OLD, found=False)


def test_acuity_read_is_get_of_the_appointment_and_reads_its_datetime() -> None:
    provider = Answers((200, {"id": 700001, "datetime": "2027-03-14T11:00:00-0400", "canceled": False}))
    read = provider.client().read_booking(ACUITY, "700001", ACUITY_KEY)
    assert read.state.start == START
    assert read.state.active
    assert (provider.requests[0].method, provider.requests[0].url.path) == (
        "GET",
        "/api/v1/appointments/700001",
    )
    assert provider.requests[0].headers["authorization"].startswith("Basic ")
    assert not ACUITY.booking_state("700001", {"id": 700002, "datetime": "x"}).found


# -- classification: unknown outcome vs definite answer -------------------------------------------------


def _failure(provider: str, answer: Any) -> ProviderError:
    adapter = ADAPTERS[provider]
    cmd = command(provider, {"calcom": OLD, "acuity": "700001", "iclosed": "1001"}[provider])
    key = {"calcom": CAL_KEY, "acuity": ACUITY_KEY, "iclosed": ICLOSED_KEY}[provider]
    with pytest.raises(ProviderError) as caught:
        Answers(answer).client().send_once(adapter, adapter.build_request(cmd), key)
    return caught.value


REQUEST = httpx.Request("POST", "https://calcom.invalid/")


@pytest.mark.parametrize(
    ("provider", "answer", "unknown"),
    [
        ("calcom", httpx.ReadTimeout("slow", request=REQUEST), True),
        ("calcom", httpx.WriteTimeout("slow", request=REQUEST), True),
        ("calcom", httpx.RemoteProtocolError("closed after sending", request=REQUEST), True),
        ("calcom", httpx.ReadError("reset", request=REQUEST), True),
        ("calcom", httpx.ConnectTimeout("never connected", request=REQUEST), False),
        ("calcom", httpx.ConnectError("refused", request=REQUEST), False),
        ("calcom", (500, envelope("Internal server error", "InternalServerErrorException")), True),
        ("calcom", (503, None), True),
        ("calcom", (409, raw(409, "booking_conflict_error")), True),
        ("calcom", (400, envelope(ALREADY)), True),
        ("calcom", (400, envelope(CANCELLED)), False),
        (
            "calcom",
            (400, raw(400, "User either already has booking at this time or is not available")),
            False,
        ),
        ("calcom", (401, envelope("ApiAuthStrategy - api key - Your api key is not valid")), False),
        ("acuity", httpx.ReadTimeout("slow", request=REQUEST), True),
        ("acuity", (502, None), True),
        ("acuity", (400, {"status_code": 400, "message": "x", "error": "not_available"}), False),
        ("iclosed", (503, None), True),
    ],
)
def test_outcome_unknown_is_a_structured_field(provider: str, answer: Any, unknown: bool) -> None:
    assert _failure(provider, answer).outcome_unknown is unknown


def test_a_read_never_has_an_unknown_outcome() -> None:
    with pytest.raises(ProviderError) as caught:
        Answers(httpx.ReadTimeout("slow", request=REQUEST)).client().send_once(CALCOM, calcom_read(), CAL_KEY)
    assert caught.value.outcome_unknown is False


def test_calcom_move_is_never_resent_after_an_unknown_outcome_but_a_target_state_put_is() -> None:
    calcom = Answers((503, None))
    with pytest.raises(ProviderError) as caught:
        calcom.client().send(CALCOM, CALCOM.build_request(command()), CAL_KEY)
    assert (len(calcom.requests), caught.value.outcome_unknown) == (1, True)
    iclosed = Answers((503, None), (200, {"data": {"eventCall": {"id": 1001}}}))
    iclosed.client().send(ICLOSED, ICLOSED.build_request(command("iclosed", "1001")), ICLOSED_KEY)
    assert len(iclosed.requests) == 2


def test_acuity_lost_answer_is_settled_by_reading_the_appointment() -> None:
    at_start = {"id": 700001, "datetime": "2027-03-14T11:00:00-0400", "canceled": False}
    provider = Answers(httpx.RemoteProtocolError("closed", request=REQUEST), (200, at_start))
    reply = provider.client().move(ACUITY, command("acuity", "700001"), ACUITY_KEY)
    assert reply.body == at_start
    assert [r.method for r in provider.requests] == ["PUT", "GET"]


def test_acuity_lost_answer_that_did_not_move_is_sent_again_after_the_read() -> None:
    before = {"id": 700001, "datetime": "2027-03-10T11:00:00-0400", "canceled": False}
    moved = {"id": 700001, "datetime": "2027-03-14T11:00:00-0400", "canceled": False}
    provider = Answers(httpx.ReadTimeout("slow", request=REQUEST), (200, before), (200, moved))
    provider.client().move(ACUITY, command("acuity", "700001"), ACUITY_KEY)
    assert [r.method for r in provider.requests] == ["PUT", "GET", "PUT"]


# -- Cal.com's answers as they are ------------------------------------------------------------------------


def test_calcom_403_blocked_email_is_a_refusal_of_the_booking_not_a_credentials_error() -> None:
    error = _failure("calcom", (403, raw(403, "Cannot use this email to create the booking.")))
    assert (error.status, error.code, error.errors[0].field) == (422, "attendee_blocked", "booking_id")
    # Any other provider's 403 is still its refusal of the relay's credentials.
    assert _failure("iclosed", (403, {"message": "Forbidden"})).code == "provider_auth_failed"


def test_calcom_498_expired_token_reads_the_secret_again_like_401() -> None:
    for status in (401, 498):
        error = _failure("calcom", (status, envelope("ApiAuthStrategy - api key - Your api key is expired")))
        assert (error.status, error.code) == (502, "provider_auth_failed")


def test_calcom_404_for_a_rejected_or_awaiting_host_booking_is_not_reschedulable() -> None:
    error = _failure("calcom", (404, raw(404, "Could not find original booking")))
    assert (error.status, error.code) == (422, "booking_not_reschedulable")
    plain = _failure("calcom", (404, envelope(f"Booking with uid={OLD} was not found in the database")))
    assert (plain.status, plain.code) == (404, "booking_not_found")


@pytest.mark.parametrize(
    "message",
    [
        "User either already has booking at this time or is not available",
        "One of the hosts either already has booking at this time or is not available",
        "The event type can't be booked at the \"start\" time provided. This could be because it's too soon",
        "Attempting to book a meeting in the past.",
    ],
)
@pytest.mark.parametrize("shape", [raw, lambda _status, message: envelope(message)])
def test_calcom_not_available_and_in_the_past_name_the_start(message: str, shape: Any) -> None:
    error = _failure("calcom", (400, shape(400, message)))
    assert (error.status, error.code) == (422, "provider_rejected")
    assert [(p.field, p.message) for p in error.errors] == [("start", message)]


def test_calcom_cancelled_400_is_not_reschedulable_and_already_rescheduled_is_a_409_to_read() -> None:
    cancelled = _failure("calcom", (400, envelope(CANCELLED)))
    assert (cancelled.status, cancelled.code) == (422, "booking_not_reschedulable")
    already = _failure("calcom", (400, envelope(ALREADY)))
    assert (already.status, already.code, already.moved_to) == (409, "booking_moved_elsewhere", NEW)


def calcom_429(reset: str) -> httpx.Response:
    return httpx.Response(
        429,
        json=envelope(
            "CustomThrottlerGuard - Too many requests. Please try again later.", "ThrottlerException"
        ),
        headers=[
            (b"X-RateLimit-Limit-Default", b"120"),
            (b"X-RateLimit-Remaining-Default", b"0"),
            (b"X-RateLimit-Reset-Default", reset.encode()),
        ],
    )


def test_calcom_429_waits_the_reset_header_seconds_and_tells_the_caller() -> None:
    provider = Answers(calcom_429("37"))
    with pytest.raises(ProviderError) as caught:
        provider.client().send(CALCOM, calcom_read(), CAL_KEY, Deadline.within(20))
    error = caught.value
    assert (error.status, error.code, error.retry_after, error.wait_at_least) == (
        429,
        "provider_rate_limited",
        37,
        37,
    )
    assert len(provider.requests) == 1  # 37 s does not fit in the deadline: no call inside the block


@pytest.mark.parametrize("reset", ["0", "", "-3", "soon", "\u0663\u0667", "9" * 40])
def test_calcom_429_never_asks_for_a_sub_second_retry(reset: str) -> None:
    error = _failure("calcom", calcom_429(reset))
    assert error.retry_after is not None
    assert 1 <= error.retry_after <= MAX_RETRY_AFTER_SECONDS
    assert error.wait_at_least == error.retry_after


def test_calcom_sync_retry_of_a_429_waits_at_least_the_reset() -> None:
    waits: list[float] = []
    provider = Answers(calcom_429("2"), (200, {"status": "success", "data": {"uid": OLD}}))
    client = ProviderClient(SETTINGS, ADAPTERS, transport=httpx.MockTransport(provider), sleep=waits.append)
    client.send(CALCOM, calcom_read(), CAL_KEY, Deadline.within(20))
    assert waits
    assert waits[0] >= 2


def test_acuity_429_is_rate_limited_with_a_whole_second_wait() -> None:
    error = _failure(
        "acuity", (429, {"status_code": 429, "message": "Too Many Requests", "error": "too_many_requests"})
    )
    assert (error.status, error.code, error.retry_after) == (429, "provider_rate_limited", 1)


# -- odd answers never become a 500 ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("12", 12),
        ("-5", None),
        ("1e3", None),
        ("\u0661\u0662", None),  # Arabic-Indic digits: str.isdigit() says yes, they are not HTTP
        ("\u00b2", None),  # superscript two: isdigit() but int() fails
        ("99999999999999999999", None),
        ("9999999999", MAX_RETRY_AFTER_SECONDS),
        ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_RETRY_AFTER_SECONDS),
        ("Mon, 01 Jan 1990 00:00:00 GMT", 0),
        ("Tue, 99 Foo 2027 99:99:99 GMT", None),
        ("garbage", None),
        ("x" * 10_000, None),
    ],
)
def test_retry_after_odd_values_are_bounded_or_ignored(header: str, expected: int | None) -> None:
    # As a header arrives: bytes (httpx decodes UTF-8 ones, so other digits reach the parser).
    assert retry_after_seconds(httpx.Headers([(b"Retry-After", header.encode())]), None) == expected


def test_retry_after_in_the_body_must_be_a_plain_non_negative_integer() -> None:
    assert retry_after_seconds(httpx.Headers(), {"retryAfter": 4}) == 4
    for odd in (-1, True, "4", 4.5):
        assert retry_after_seconds(httpx.Headers(), {"retryAfter": odd}) is None


def test_deep_or_huge_bodies_are_no_json_and_no_500() -> None:
    assert parse_json(b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1)) is None
    assert parse_json(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH) is not None
    assert parse_json(b'["' + b"[" * 1000 + b'"]') == ["[" * 1000]  # brackets in strings do not nest
    assert parse_json(b"[" * 200_000) is None
    for body in (b"[" * 200_000, b'{"message": "' + b"x" * (MAX_RESPONSE_BYTES + 10) + b'"}'):
        error = _failure("calcom", httpx.Response(500, content=body))
        assert (error.status, error.code, error.outcome_unknown) == (502, "provider_error", True)
        assert len(json.dumps(error.problem())) < 1000


def test_a_deep_validation_body_maps_to_a_bounded_problem() -> None:
    nested: Any = "x"
    for _ in range(MAX_JSON_DEPTH - 5):
        nested = [nested]
    error = _failure("calcom", (400, {"statusCode": 400, "message": ["start" * 500, nested]}))
    assert error.status == 422
    assert all(len(p.message) <= 300 for p in error.errors)


def test_relay_errors_stay_relay_errors() -> None:
    assert issubclass(ProviderError, RelayError)


class HoldingBucket:
    """The pacing bucket's surface: always grants, records holds."""

    def __init__(self) -> None:
        self.holds: list[tuple[str, int]] = []

    def take(self, key: str, *, interval_ms: int, now_ms: int, horizon_ms: int) -> Any:
        return type("Take", (), {"slot_ms": now_ms, "next_free_ms": now_ms + interval_ms, "calls": 1})()

    def hold(self, key: str, *, until_ms: int) -> None:
        self.holds.append((key, until_ms))


@pytest.mark.parametrize("rate", [0, 100])
def test_a_429_holds_the_account_so_nothing_is_sent_inside_the_block(rate: int) -> None:
    provider = Answers(calcom_429("45"), (200, {"status": "success", "data": {"uid": OLD}}))
    bucket = HoldingBucket()
    now = [1_000_000.0]
    client = ProviderClient(
        SETTINGS,
        ADAPTERS,
        transport=httpx.MockTransport(provider),
        sleep=lambda _s: None,
        bucket=bucket,
        clock=lambda: now[0],
    )
    pacing = Pacing(key="pace#calcom#default", rate_per_minute=rate, max_wait_seconds=2)
    with pytest.raises(ProviderError):
        client.send_once(CALCOM, calcom_read(), CAL_KEY, Deadline.within(20), pacing)
    # Inside the block: refused as paced (429, Retry-After the rest of the block), nothing sent
    now[0] += 10
    with pytest.raises(RelayError) as caught:
        client.send_once(CALCOM, calcom_read(), CAL_KEY, Deadline.within(20), pacing)
    assert (caught.value.status, caught.value.code, caught.value.retry_after) == (429, "paced", 35)
    assert len(provider.requests) == 1
    # A paced account's shared bucket is held too (other containers); an unpaced one is not touched
    assert bucket.holds == ([("pace#calcom#default", 1_000_045_000)] if rate else [])
    # After the block, calls go out again
    now[0] += 36
    client.send_once(CALCOM, calcom_read(), CAL_KEY, Deadline.within(20), pacing)
    assert len(provider.requests) == 2


def test_calcom_5xx_that_read_as_not_moved_are_resent_within_the_budget_then_unavailable() -> None:
    in_place = (
        200,
        {
            "status": "success",
            "data": {"uid": OLD, "status": "accepted", "start": "2027-03-10T15:00:00.000Z"},
        },
    )
    provider = Answers(in_place, (503, None), in_place, (503, None), in_place, (503, None), in_place)
    with pytest.raises(ProviderError) as caught:
        provider.client().move(CALCOM, command(), CAL_KEY, Deadline.within(20))
    assert (caught.value.status, caught.value.code) == (503, "provider_unavailable")  # auto mode queues it
    assert [r.method for r in provider.requests] == ["GET", "POST", "GET", "POST", "GET", "POST", "GET"]
