"""Cal.com API v2 sandbox: `POST /v2/bookings/{uid}/reschedule` and `GET /v2/bookings/{uid}`,
per docs/providers/calcom.md, which cites Cal.com's own code for every status and text here.

A move creates a new booking with a new uid; the old one becomes `cancelled` with `rescheduledToUid`,
so a second move of the old uid is Cal.com's "already rescheduled" 400 naming the new uid. Seeded
bookings that refuse a move: cancelled, rejected and awaiting_host (raw 404), a blocked attendee
email (raw 403) (see `local.sandbox.bookings`); a seated booking moves one seat (`seatUid`) and a
recurring one answers with an array. Errors come in Cal.com's envelope or, where Cal.com's booking
library throws them, as Nest's raw `{statusCode, message}`. A missing or unknown `cal-api-version`
falls back to 2024-04-15: no POST route, and an older shape on GET. The rate limiter is Cal.com's
throttler: a fixed 60 s window, rejected calls counted, a 60 s block, `X-RateLimit-*` in seconds
on every answer, no `Retry-After`.
"""

from __future__ import annotations

import re
import secrets
import threading
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

from local.sandbox.api import (
    ApiRequest,
    ApiResponse,
    BodyError,
    bearer_matches,
    bearer_token,
    decode_json,
    is_json_content_type,
)
from local.sandbox.bookings import (
    CALCOM_BLOCKED_EMAILS,
    CALCOM_EVENT_TYPES,
    CALCOM_FIRST_ID,
    CALCOM_UIDS,
    CalcomSeed,
    calcom_seeds,
)
from local.sandbox.persistence import dump_fields, load_fields
from local.sandbox.timefields import format_utc_millis, parse_rfc3339, wall_time_to_utc

API_VERSIONS = ("2024-08-13", "2026-02-25")
# Where a missing or unknown cal-api-version goes: a version with no reschedule route.
FALLBACK_API_VERSION = "2024-04-15"
# The published default per API key; reported in X-RateLimit-Limit-Default on a 429 fault.
RATE_LIMIT_PER_MINUTE = 120
RATE_WINDOW_SECONDS = 60
# Cal.com's throttler blocks a key this long once it goes over its limit.
RATE_LIMIT_BLOCK_SECONDS = 60
# One slot that is always taken (the host's other booking), so the slot-taken 400 can be provoked.
BUSY_SLOT_UTC = datetime(2031, 6, 2, 15, 0, tzinfo=UTC)
# Cal.com's texts, word for word (see docs/providers/calcom.md for where each comes from).
TEXT_ALREADY_RESCHEDULED = (
    "Can't reschedule booking with uid={uid} because it has been cancelled and rescheduled already to "
    "booking with uid={new}. You probably want to reschedule {new} instead by passing it within the "
    "request URL."
)
TEXT_CANCELLED = (
    "Can't reschedule booking with uid={uid} because it has been cancelled. Please provide uid of a "
    "booking that is not cancelled."
)
TEXT_SEATED = (
    "Booking with uid={uid} is a seated booking which means you have to provide seatUid in the request "
    "body to specify which seat specifically you want to reschedule."
)
TEXT_NOT_FOUND = "Booking with uid={uid} was not found in the database"
TEXT_NOT_ORIGINAL = "Could not find original booking"
TEXT_SLOT_TAKEN = "User either already has booking at this time or is not available"
TEXT_IN_THE_PAST = "Attempting to book a meeting in the past."
TEXT_BLOCKED_EMAIL = "Cannot use this email to create the booking."
TEXT_BAD_KEY = "ApiAuthStrategy - api key - Your api key is not valid"
TEXT_THROTTLED = "CustomThrottlerGuard - Too many requests. Please try again later."
TEXT_CONFLICT = "booking_conflict_error"
TEXT_BODY_REQUIRED = "Body is required"
RESCHEDULABLE = ("accepted", "pending")
# Generated uids look like Cal.com's (22 characters) and cannot collide with a seed or an earlier run.
_NEW_UID_PREFIX = "sbxcal"
_NEW_UID_RANDOM_BYTES = 8

_RESCHEDULE_PATH = re.compile(r"/v2/bookings/([^/]+)/reschedule")
_BOOKING_PATH = re.compile(r"/v2/bookings/([^/]+)")
_ALLOWED_FIELDS = ("start", "rescheduledBy", "reschedulingReason", "seatUid")
# Loose on purpose: the sandbox checks that the value is an email, not that it is deliverable.
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_HOST = {
    "id": 801,
    "name": "Sandbox Host",
    "email": "sandbox-host@example.test",
    "username": "sandbox-host",
    "timeZone": "America/New_York",
}
_EXCEPTION_NAMES = {
    400: "BadRequestException",
    401: "UnauthorizedException",
    403: "ForbiddenException",
    404: "NotFoundException",
    409: "ConflictException",
    413: "PayloadTooLargeException",
    498: "HttpException",
    429: "ThrottlerException",
    500: "InternalServerErrorException",
    502: "BadGatewayException",
    503: "ServiceUnavailableException",
    504: "GatewayTimeoutException",
}


def _now() -> datetime:
    return datetime.now(UTC)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:  # 498 and other codes outside the registry
        return "Error"


@dataclass
class _Booking:
    id: int
    uid: str
    event_type_id: int
    status: str
    start: datetime  # aware
    attendees: list[dict[str, Any]]
    created_at: datetime
    recurring_booking_uid: str | None = None
    seated: bool = False
    rescheduling_reason: str | None = None
    rescheduled_by_email: str | None = None
    rescheduled_from_uid: str | None = None
    rescheduled_to_uid: str | None = None
    cancellation_reason: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def duration(self) -> int:
        return CALCOM_EVENT_TYPES[self.event_type_id][1]

    def to_json(self) -> dict[str, Any]:
        slug, _ = CALCOM_EVENT_TYPES[self.event_type_id]
        data: dict[str, Any] = {
            "id": self.id,
            "uid": self.uid,
            "title": f"Sandbox {self.duration} min between Sandbox Host and {self.attendees[0]['name']}",
            "description": "",
            "hosts": [dict(_HOST)],
            "status": self.status,
            "cancellationReason": self.cancellation_reason,
            "reschedulingReason": self.rescheduling_reason,
            "rescheduledByEmail": self.rescheduled_by_email,
            "rescheduledFromUid": self.rescheduled_from_uid,
            "rescheduledToUid": self.rescheduled_to_uid,
            "start": format_utc_millis(self.start),
            "end": format_utc_millis(self.start + timedelta(minutes=self.duration)),
            "duration": self.duration,
            "eventTypeId": self.event_type_id,
            "eventType": {"id": self.event_type_id, "slug": slug},
            "meetingUrl": f"https://meet.example.test/calcom-sandbox-{self.id}",
            "location": f"https://meet.example.test/calcom-sandbox-{self.id}",
            "absentHost": False,
            "createdAt": format_utc_millis(self.created_at),
            "updatedAt": format_utc_millis(self.created_at),
            "metadata": dict(self.metadata),
            "attendees": [dict(attendee) for attendee in self.attendees],
            "guests": [],
            "bookingFieldsResponses": {key: self.attendees[0][key] for key in ("name", "email")},
        }
        if self.recurring_booking_uid is not None:
            data["recurringBookingUid"] = self.recurring_booking_uid
        return data


def _attendee(number: int, zone: str, seat_uid: str | None = None) -> dict[str, Any]:
    attendee: dict[str, Any] = {
        "name": f"Sandbox Attendee {number}",
        "email": f"sandbox-attendee-{number}@example.test",
        "timeZone": zone,
        "language": "en",
        "absent": False,
    }
    if seat_uid is not None:
        attendee["seatUid"] = seat_uid
    return attendee


def _seed_booking(seed: CalcomSeed) -> _Booking:
    start = wall_time_to_utc(datetime.fromisoformat(seed.start), seed.time_zone)
    if seed.seat_uids:
        attendees = [_attendee(seed.number * 10 + i, seed.time_zone, s) for i, s in enumerate(seed.seat_uids)]
    else:
        attendees = [_attendee(seed.number, seed.time_zone)]
    return _Booking(
        id=CALCOM_FIRST_ID + seed.number - 1,
        uid=seed.uid,
        event_type_id=seed.event_type_id,
        status=seed.status,
        start=start,
        attendees=attendees,
        created_at=datetime(2030, 1, 1, tzinfo=UTC),
        recurring_booking_uid=seed.recurring_booking_uid,
        seated=bool(seed.seat_uids),
        cancellation_reason="Sandbox: cancelled by the attendee" if seed.status == "cancelled" else None,
    )


def _wrong(prop: str, constraint: str) -> str:
    """Cal.com's validation text: `"<prop> property is wrong,<constraints> "`."""
    return f"{prop} property is wrong,{constraint} "


def _start_problem(start: object) -> str | None:
    if start is None:
        return _wrong("start", "start should not be empty")
    if not isinstance(start, str) or not start.endswith("Z") or parse_rfc3339(start) is None:
        return _wrong("start", "start must be a valid ISO 8601 date string")
    return None


def _optional_problem(body: dict[str, Any]) -> str | None:
    if "rescheduledBy" in body:
        by = body["rescheduledBy"]
        if not isinstance(by, str) or _EMAIL.fullmatch(by) is None:
            return _wrong("rescheduledBy", "rescheduledBy must be an email")
    for text_field in ("reschedulingReason", "seatUid"):
        if text_field in body and not isinstance(body[text_field], str):
            return _wrong(text_field, f"{text_field} must be a string")
    if "seatUid" in body and "reschedulingReason" in body:
        return "property reschedulingReason should not exist"  # the seated variant has no reason
    return None


def _body_problem(body: dict[str, Any]) -> str | None:
    """The first thing wrong with a reschedule body, in class-validator's words, or None."""
    if not body:
        return TEXT_BODY_REQUIRED
    unknown = [key for key in body if key not in _ALLOWED_FIELDS]
    if unknown:
        return f"property {unknown[0]} should not exist"
    return _start_problem(body.get("start")) or _optional_problem(body)


def _json_object(request: ApiRequest) -> dict[str, Any] | str:
    """The request's JSON object body (another content type parses as none), or what is wrong with it."""
    if not is_json_content_type(request.headers) or not request.body:
        return {}
    try:
        body = decode_json(request.body)
    except BodyError:
        return "Request body is not valid JSON"  # the sandbox's words: Cal.com's parser error varies
    return body if isinstance(body, dict) else TEXT_BODY_REQUIRED


def _raw(status: int, message: str) -> ApiResponse:
    """An error Cal.com's booking library throws: Nest's own body, not Cal.com's envelope."""
    return ApiResponse(status, {"statusCode": status, "message": message})


def _older_shape(booking: _Booking) -> dict[str, Any]:
    """What 2024-04-15's GET answers (the sandbox's rendering: Prisma names, no envelope)."""
    return {
        "id": booking.id,
        "uid": booking.uid,
        "startTime": format_utc_millis(booking.start),
        "endTime": format_utc_millis(booking.start + timedelta(minutes=booking.duration)),
        "status": booking.status.upper(),
        "eventTypeId": booking.event_type_id,
        "rescheduled": booking.rescheduled_to_uid is not None,
        "fromReschedule": booking.rescheduled_from_uid,
    }


class CalcomApi:
    name = "calcom"

    def __init__(self, token: str) -> None:
        self._token = token
        self._lock = threading.Lock()
        self._bookings = {booking.uid: booking for booking in map(_seed_booking, calcom_seeds())}
        self._next_id = CALCOM_FIRST_ID + len(self._bookings)

    # Cal.com's throttler: a fixed window, rejected calls counted, the key blocked this long.
    rate_limit_block_seconds = RATE_LIMIT_BLOCK_SECONDS

    # -- error shapes --------------------------------------------------------------------------

    def error(self, status: int, message: str, path: str = "") -> ApiResponse:
        body = {
            "status": "error",
            "timestamp": format_utc_millis(_now()),
            "path": path,
            "error": {"code": _EXCEPTION_NAMES.get(status, "HttpException"), "message": message},
        }
        return ApiResponse(status, body, (("X-Request-Id", secrets.token_hex(8)),))

    def fault(self, status: int, retry_after: int | None) -> ApiResponse:
        if status == HTTPStatus.TOO_MANY_REQUESTS:  # Cal.com's own 429: never a Retry-After
            reset_in = RATE_LIMIT_BLOCK_SECONDS if retry_after is None else retry_after
            return self.rate_limited(RATE_LIMIT_PER_MINUTE, reset_in, int(_now().timestamp()) + reset_in)
        retry_header = () if retry_after is None else (("Retry-After", str(retry_after)),)
        failed = self.error(status, _phrase(status))
        return replace(failed, headers=failed.headers + retry_header)

    def rate_limit_key(self, request: ApiRequest) -> str:
        return bearer_token(request.headers)

    def rate_limited(self, per_minute: int, retry_after: int, reset_at: int) -> ApiResponse:
        # The reset is seconds remaining (of the block), not a time; no Retry-After (the contract).
        failed = self.error(429, TEXT_THROTTLED)
        return replace(failed, headers=failed.headers + self.rate_limit_headers(per_minute, 0, retry_after))

    def rate_limit_headers(
        self, per_minute: int, remaining: int, reset_in: int
    ) -> tuple[tuple[str, str], ...]:
        return (
            ("X-RateLimit-Limit-Default", str(per_minute)),
            ("X-RateLimit-Remaining-Default", str(max(0, remaining))),
            ("X-RateLimit-Reset-Default", str(reset_in)),
        )

    def conflict(self) -> ApiResponse:
        """A move colliding with one still committing (the unique key over start, end and host)."""
        return _raw(409, TEXT_CONFLICT)

    # -- routes ----------------------------------------------------------------------------------

    def _preflight(self, request: ApiRequest) -> ApiResponse | None:
        """Route (per version), then auth, checked before the body is looked at."""
        path = request.path
        # A missing or unknown version is no error: it is served by 2024-04-15, which has no POST route.
        current = request.headers.get("cal-api-version") in API_VERSIONS
        known_route = (request.method == "POST" and current and _RESCHEDULE_PATH.fullmatch(path)) or (
            request.method == "GET" and _BOOKING_PATH.fullmatch(path)
        )
        if not known_route:
            return self.error(404, f"Cannot {request.method} {path}", path)
        # No credentials at all is allowed by the route; a wrong key is refused.
        if "authorization" in request.headers and not bearer_matches(request.headers, self._token):
            return self.error(401, TEXT_BAD_KEY, path)
        return None

    def handle(self, request: ApiRequest) -> ApiResponse:
        if (rejection := self._preflight(request)) is not None:
            return rejection
        path = request.path
        move = _RESCHEDULE_PATH.fullmatch(path)
        if request.method == "GET" or move is None:
            older = request.headers.get("cal-api-version") not in API_VERSIONS
            return self._read(path.removeprefix("/v2/bookings/"), path, older=older)
        body = _json_object(request)
        if isinstance(body, str):
            return self.error(400, body, path)
        if (problem := _body_problem(body)) is not None:
            return self.error(400, problem, path)
        return self._reschedule(move.group(1), body, path)

    def _read(self, uid: str, path: str, *, older: bool = False) -> ApiResponse:
        with self._lock:
            booking = self._bookings.get(uid)
            series = [b.to_json() for b in self._bookings.values() if b.recurring_booking_uid == uid]
            if booking is None and series:  # a series uid answers with its occurrences
                return ApiResponse(200, {"status": "success", "data": series})
            if booking is None:
                return self.error(404, TEXT_NOT_FOUND.format(uid=uid), path)
            if older:
                return ApiResponse(200, _older_shape(booking))
            return ApiResponse(200, {"status": "success", "data": booking.to_json()})

    def _refusal(self, booking: _Booking, body: dict[str, Any], path: str) -> ApiResponse | None:
        uid = booking.uid
        if booking.status == "cancelled" and booking.rescheduled_to_uid is not None:
            text = TEXT_ALREADY_RESCHEDULED.format(uid=uid, new=booking.rescheduled_to_uid)
            return self.error(400, text, path)
        if booking.status == "cancelled":
            return self.error(400, TEXT_CANCELLED.format(uid=uid), path)
        if booking.status not in RESCHEDULABLE:  # rejected, awaiting_host: the library finds no original
            return _raw(404, TEXT_NOT_ORIGINAL)
        if (seat_problem := self._seat_problem(booking, body.get("seatUid"), path)) is not None:
            return seat_problem
        if any(a.get("email") in CALCOM_BLOCKED_EMAILS for a in booking.attendees):
            return _raw(403, TEXT_BLOCKED_EMAIL)
        return None

    def _seat_problem(self, booking: _Booking, seat_uid: Any, path: str) -> ApiResponse | None:
        uid = booking.uid
        if booking.seated and seat_uid is None:
            return self.error(400, TEXT_SEATED.format(uid=uid), path)
        # The two seat texts below are the sandbox's own (the contract has no text for them).
        if not booking.seated and seat_uid is not None:
            return self.error(
                400, f"Booking with uid={uid} is not a seated booking: seatUid is not allowed", path
            )
        if seat_uid is not None and all(a.get("seatUid") != seat_uid for a in booking.attendees):
            return self.error(400, f"Seat with uid={seat_uid} was not found in booking with uid={uid}", path)
        return None

    def _slot_problem(self, start: datetime) -> ApiResponse | None:
        if start <= _now():
            return _raw(400, TEXT_IN_THE_PAST)
        if start == BUSY_SLOT_UTC:
            return _raw(400, TEXT_SLOT_TAKEN)
        return None

    def _reschedule(self, uid: str, body: dict[str, Any], path: str) -> ApiResponse:
        with self._lock:
            old = self._bookings.get(uid)
            if old is None:
                return self.error(404, TEXT_NOT_FOUND.format(uid=uid), path)
            if (refusal := self._refusal(old, body, path)) is not None:
                return refusal
            start = parse_rfc3339(body["start"]) or old.start  # never None: _body_problem checked it
            if (taken := self._slot_problem(start.astimezone(UTC))) is not None:
                return taken
            by = body.get("rescheduledBy")
            seat_uid = body.get("seatUid")
            moved_attendees = [a for a in old.attendees if seat_uid is None or a.get("seatUid") == seat_uid]
            # A pending booking stays pending unless the event type's owner moves it (auto-confirm).
            status = "accepted" if old.status == "accepted" or by == _HOST["email"] else "pending"
            new = _Booking(
                id=self._next_id,
                uid=_NEW_UID_PREFIX + secrets.token_hex(_NEW_UID_RANDOM_BYTES),
                event_type_id=old.event_type_id,
                status=status,
                start=start.astimezone(UTC),
                attendees=[dict(a) for a in moved_attendees],
                created_at=_now(),
                recurring_booking_uid=old.recurring_booking_uid,
                seated=old.seated,
                rescheduling_reason=body.get("reschedulingReason"),
                rescheduled_by_email=by,
                rescheduled_from_uid=old.uid,
            )
            self._next_id += 1
            self._bookings[new.uid] = new
            if seat_uid is None:
                old.status = "cancelled"
                old.rescheduled_to_uid = new.uid
            else:  # the other seats stay on the old booking
                old.attendees = [a for a in old.attendees if a.get("seatUid") != seat_uid]
            data: Any = [new.to_json()] if new.recurring_booking_uid else new.to_json()
            return ApiResponse(201, {"status": "success", "data": data})

    # -- persistence (local.sandbox.persistence) -----------------------------------------------------

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {"next_id": self._next_id, "bookings": [dump_fields(b) for b in self._bookings.values()]}

    def restore(self, state: dict[str, Any]) -> None:
        with self._lock:
            bookings = [_Booking(**load_fields(stored)) for stored in state["bookings"]]
            self._bookings = {booking.uid: booking for booking in bookings}
            self._next_id = int(state["next_id"])

    # -- inspection ------------------------------------------------------------------------------

    def booking_ids(self) -> list[str]:
        # The plain bookings that can be moved; the refusal seeds are in the snapshot.
        return list(CALCOM_UIDS)

    def bookings_snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [booking.to_json() for booking in self._bookings.values()]
