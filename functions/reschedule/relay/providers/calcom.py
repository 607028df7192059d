"""Cal.com API v2: POST /v2/bookings/{uid}/reschedule (docs/providers/calcom.md).

A move creates a new booking with a new uid (the old one is cancelled and names its successor), so
the POST is not idempotent: after an unknown outcome the booking is read (`GET /v2/bookings/{uid}`)
before anything is sent again (relay.providers.settle). The booking is also read first, so recurring
and seated bookings, which the relay cannot move, are refused before anything changes. Errors come
in Cal.com's envelope or as Nest's raw `{statusCode, message}`; both are read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from relay.errors import FieldProblem
from relay.providers.base import (
    MAX_PROVIDER_MESSAGE,
    BearerKey,
    BookingIdProblem,
    BookingState,
    OutboundRequest,
    Provider,
    Refusal,
    pick,
)
from relay.times import rfc3339_utc

if TYPE_CHECKING:
    from relay.command import RescheduleCommand
    from relay.settings import Settings

# Cal.com uids are opaque (22 characters today); path-safe characters only.
_UID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
RESCHEDULABLE = frozenset({"accepted", "pending"})
# Cal.com's published limit per API key, and the relay's default pace below it: its window is fixed
# (a smooth pacer and a fixed window disagree at the edges) and one 429 blocks the key for 60 s.
PUBLISHED_LIMIT_PER_MINUTE = 120
DEFAULT_PACE_PER_MINUTE = 100
# The longest wait a rate-limit reset header may ask for (Cal.com blocks a key for 60 s).
MAX_RATE_LIMIT_RESET_SECONDS = 3600
RATE_LIMIT_RESET_HEADER = "x-ratelimit-reset-default"
# Cal.com's own texts (its API v2 bookings service; see docs/providers/calcom.md). The "already
# rescheduled" 400 only triggers a read; what moved is decided by reading the booking.
_ALREADY_RESCHEDULED = re.compile(
    r"^Can't reschedule booking with uid=\S+ because it has been cancelled and rescheduled already "
    r"to booking with uid=([A-Za-z0-9_-]{1,64})\."
)
_CANCELLED = re.compile(
    r"^Can't reschedule booking with uid=\S+ because it has been cancelled\. Please provide uid of a "
    r"booking that is not cancelled\."
)
_SEATED = re.compile(r"^Booking with uid=\S+ is a seated booking which means you have to provide seatUid")
_SLOT_TAKEN = (
    "User either already has booking at this time or is not available",
    "One of the hosts either already has booking at this time or is not available",
)
_OUT_OF_BOUNDS = (
    'The event type can\'t be booked at the "start" time provided',
    "Attempting to book a meeting in the past.",
)
_CONFLICT = "booking_conflict_error"
_ATTENDEE_BLOCKED = "Cannot use this email to create the booking."
_NOT_ORIGINAL = "Could not find original booking"
# Bounds on what is read of an error message (texts are matched from their start).
MAX_MESSAGE_CHARS = 2000
MAX_MESSAGE_PARTS = 20
MAX_TIME_CHARS = 40
MAX_RESET_DIGITS = 10
# Cal.com's successor uid when it cannot find the new booking (the 400 then names no booking).
_NO_SUCCESSOR = "undefined"
# 498: Cal.com's answer to an expired OAuth access token; the relay reads the secret again, as on 401.
EXPIRED_TOKEN_STATUS = 498
_FIELDS = {"start": "start", "reschedulingReason": "reason", "rescheduledBy": "rescheduled_by"}
# Scheduling facts of the new booking; attendees, hosts, responses and metadata are never kept.
_RESULT_FIELDS = ("id", "uid", "start", "end", "duration", "status", "eventTypeId", "rescheduledFromUid")


class CalcomKey(BearerKey):
    """`{"api_key": "cal_..."}`, sent as a Bearer token, as stored."""

    def warnings(self) -> list[str]:
        if not self.api_key.get_secret_value().startswith("cal_"):
            return ["The Cal.com API key does not start with 'cal_'; check the stored secret."]
        return []


def _data(body: Any) -> Any:
    return body.get("data") if isinstance(body, dict) else None


def _message(body: Any) -> str:
    """The error text of either shape: the envelope's `error.message`, or Nest's raw `message`.

    class-validator may give a list of texts; they are joined as Cal.com's filter joins them.
    """
    if not isinstance(body, dict):
        return ""
    error = body.get("error")
    message = error.get("message") if isinstance(error, dict) else body.get("message")
    if isinstance(message, list):
        message = ", ".join(part for part in message[:MAX_MESSAGE_PARTS] if isinstance(part, str))
    return message[:MAX_MESSAGE_CHARS] if isinstance(message, str) else ""


def _parse_start(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) > MAX_TIME_CHARS:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _not_movable(code: str, detail: str, message: str = "") -> Refusal:
    text = (message or detail)[:MAX_PROVIDER_MESSAGE]
    return Refusal(code=code, detail=detail, errors=[FieldProblem("booking_id", text, code)])


class Calcom(Provider):
    name: ClassVar[str] = "calcom"
    display_name: ClassVar[str] = "Cal.com"
    booking_id_format: ClassVar[str] = "a booking uid (letters, digits, '-' and '_')"
    optional_fields: ClassVar[frozenset[str]] = frozenset({"reason", "rescheduled_by"})
    needs_end: ClassVar[bool] = False
    base_url_setting: ClassVar[str] = "calcom_base_url"
    example_booking_id: ClassVar[str] = "3nVkHw2YpQe8LmZr1sTa"
    production_base_url: ClassVar[str] = "https://api.cal.com"
    credentials: ClassVar[type[BearerKey]] = CalcomKey
    delivery_rate_per_minute: ClassVar[int] = DEFAULT_PACE_PER_MINUTE
    reads_before_move: ClassVar[bool] = True
    booking_id_changes: ClassVar[bool] = True
    has_read: ClassVar[bool] = True
    # The POST creates a booking: after an unknown outcome it is never sent again before a read.
    repeat_is_harmless: ClassVar[bool] = False
    auth_statuses: ClassVar[frozenset[int]] = frozenset({401, EXPIRED_TOKEN_STATUS})
    holds_after_429: ClassVar[bool] = True

    def __init__(self, base_url: str, api_version: str = "2024-08-13") -> None:
        super().__init__(base_url)
        self.api_version = api_version

    @classmethod
    def from_settings(cls, settings: Settings) -> Calcom:
        return cls(str(settings.calcom_base_url), settings.calcom_api_version)

    @staticmethod
    def normalise_booking_id(raw: str) -> str:
        if not _UID.match(raw):
            raise BookingIdProblem(
                "Cal.com booking ids are uids: letters, digits, '-' and '_', "
                f"e.g. '{Calcom.example_booking_id}'."
            )
        return raw

    def _headers(self) -> dict[str, str]:
        return {"cal-api-version": self.api_version}

    def build_request(self, command: RescheduleCommand) -> OutboundRequest:
        body: dict[str, Any] = {"start": rfc3339_utc(command.start)}
        if command.reason is not None:
            body["reschedulingReason"] = command.reason
        if command.rescheduled_by is not None:
            body["rescheduledBy"] = command.rescheduled_by
        return OutboundRequest(
            "POST", f"/v2/bookings/{command.booking_id}/reschedule", body, headers=self._headers()
        )

    def read_request(self, booking_id: str) -> OutboundRequest:
        return OutboundRequest("GET", f"/v2/bookings/{booking_id}", headers=self._headers())

    def booking_state(self, booking_id: str, body: Any) -> BookingState:
        data = _data(body)
        if isinstance(data, list):  # a recurring series' uid answers with its occurrences
            return BookingState(booking_id, active=False, recurring=True)
        if not isinstance(data, dict):
            return BookingState(booking_id, found=False)
        status = data.get("status")
        moved_to = data.get("rescheduledToUid")
        attendees = data.get("attendees")
        return BookingState(
            booking_id,
            active=status in RESCHEDULABLE,
            start=_parse_start(data.get("start")),
            status=status[:32] if isinstance(status, str) else None,
            rescheduled_to=moved_to if isinstance(moved_to, str) and _UID.match(moved_to) else None,
            recurring=bool(data.get("recurringBookingUid")),
            seated=isinstance(attendees, list)
            and any(isinstance(a, dict) and a.get("seatUid") for a in attendees),
        )

    def movable(self, state: BookingState) -> Refusal | None:
        if state.recurring:
            return _not_movable(
                "booking_recurring",
                "This Cal.com booking is part of a recurring series; the relay does not move "
                "recurring bookings. Reschedule it in Cal.com.",
            )
        if state.seated:
            return _not_movable(
                "booking_seated",
                "This Cal.com booking is a seated event; the relay does not move seats. "
                "Reschedule the seat in Cal.com.",
            )
        if state.rescheduled_to is not None:
            return Refusal(code="booking_moved_elsewhere", detail="", moved_to=state.rescheduled_to)
        if not state.active:
            return _not_movable(
                "booking_not_reschedulable",
                f"This Cal.com booking is {state.status!s:.32} and cannot be rescheduled; "
                "only accepted and pending bookings can. Book a new time instead.",
            )
        return None

    def new_booking_id(self, body: Any) -> str | None:
        uid = self._booking(body).get("uid")
        return uid if isinstance(uid, str) else None

    @staticmethod
    def _booking(body: Any) -> dict[str, Any]:
        data = _data(body)
        return data if isinstance(data, dict) else {}

    def summarise(self, body: Any) -> dict[str, Any]:
        return pick(self._booking(body), _RESULT_FIELDS)

    def outcome_unknown(self, status: int, body: Any) -> bool:
        if status >= 500:
            return True
        if status == 409:  # a move colliding with one still in flight (maybe our own first attempt)
            return _message(body) == _CONFLICT
        return status == 400 and _ALREADY_RESCHEDULED.match(_message(body)) is not None

    def rate_limit_reset(self, headers: Mapping[str, str]) -> int | None:
        """`X-RateLimit-Reset-Default`: seconds until the window (or the key's block) ends; 429s carry
        no Retry-After. Anything but plain ASCII digits is ignored."""
        value = headers.get(RATE_LIMIT_RESET_HEADER, "").strip()
        if not value or len(value) > MAX_RESET_DIGITS or not value.isascii() or not value.isdigit():
            return None
        return min(int(value), MAX_RATE_LIMIT_RESET_SECONDS)

    def refusal(self, status: int, body: Any) -> Refusal | None:
        message = _message(body)
        if status == 403 and message == _ATTENDEE_BLOCKED:
            return Refusal(
                code="attendee_blocked",
                detail="Cal.com refused this booking: the attendee's email may not book with this account.",
                errors=[FieldProblem("booking_id", message, "attendee_blocked")],
            )
        if status == 404 and message == _NOT_ORIGINAL:
            return _not_movable(
                "booking_not_reschedulable",
                "This Cal.com booking is rejected or still awaiting the host, so it cannot be "
                "rescheduled; only accepted and pending bookings can. Book a new time instead.",
                message,
            )
        return self._refusal_400(message) if status == 400 and message else None

    @staticmethod
    def _refusal_400(message: str) -> Refusal | None:
        moved = _ALREADY_RESCHEDULED.match(message)
        if moved:
            successor = None if moved.group(1) == _NO_SUCCESSOR else moved.group(1)
            return Refusal(
                code="booking_moved_elsewhere", detail=message[:MAX_PROVIDER_MESSAGE], moved_to=successor
            )
        if _SEATED.match(message):
            return _not_movable(
                "booking_seated",
                "This Cal.com booking is a seated event; the relay does not move seats.",
                message,
            )
        if _CANCELLED.match(message):
            return _not_movable(
                "booking_not_reschedulable",
                "This Cal.com booking is cancelled and cannot be rescheduled; "
                "only accepted and pending bookings can. Book a new time instead.",
                message,
            )
        return None

    def field_errors(self, body: Any) -> list[FieldProblem]:
        message = _message(body)
        if not message:
            return []
        text = message[:MAX_PROVIDER_MESSAGE]
        # Slot taken, out of the event type's bounds, in the past: all about the new start.
        if message.startswith(_SLOT_TAKEN + _OUT_OF_BOUNDS):
            return [FieldProblem("start", text, "provider_rejected")]
        # class-validator names the property ("start property is wrong,...", "property x should not exist").
        for native, canonical in _FIELDS.items():
            if re.search(rf"\b{native}\b", message):
                return [FieldProblem(canonical, text, "provider_rejected")]
        return [FieldProblem("", text, "provider_rejected")]
