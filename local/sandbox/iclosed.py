"""iClosed sandbox: `PUT /v1/eventCalls/reschedule`, per docs/providers/iclosed.md (its contract)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from typing import Any

from local.sandbox.api import (
    ApiRequest,
    ApiResponse,
    BodyError,
    bearer_matches,
    bearer_token,
    decode_json,
    is_int,
    is_json_content_type,
)
from local.sandbox.bookings import BOOKING_DURATION_MINUTES, IclosedSeed, iclosed_seeds
from local.sandbox.persistence import dump_fields, restore_fields
from local.sandbox.timefields import format_utc_millis, is_iana_zone, parse_local_wall_time, wall_time_to_utc

RESCHEDULE_PATH = "/v1/eventCalls/reschedule"
# The Startup plan's per-endpoint limit, reported in RateLimit-Limit when a 429 fault fires.
RATE_LIMIT_PER_SECOND = 20
DEFAULT_RETRY_AFTER_SECONDS = 1

_ALLOWED_FIELDS = ("id", "dateTime", "timeZone", "rescheduleReason", "notes", "userId")
_INVALID_DATETIME = "Invalid datetime: expected local time without offset, YYYY-MM-DDTHH:MM:SS"


@dataclass
class _EventCall:
    seed: IclosedSeed
    wall_time: datetime  # naive: local wall time in time_zone
    time_zone: str
    user_id: int
    rescheduled_by: str | None = None
    reschedule_reason: str | None = None
    notes: str | None = None

    def to_json(self) -> dict[str, Any]:
        call_id = self.seed.id
        return {
            "id": call_id,
            "eventId": self.seed.event_id,
            "dateTime": self.wall_time.isoformat(),
            "dateTimeUTC": format_utc_millis(wall_time_to_utc(self.wall_time, self.time_zone)),
            "timeZone": self.time_zone,
            "eventType": "UPCOMING",
            "rescheduledBy": self.rescheduled_by,
            "rescheduleReason": self.reschedule_reason,
            "notes": self.notes,
            "userId": self.user_id,
            "inviteeEmail": f"sandbox-invitee-{call_id}@example.test",
            "inviteeName": f"Sandbox Invitee {call_id}",
            "inviteePhone": "+1-555-0100",
            "inviteTimeZone": self.seed.time_zone,
            "duration": BOOKING_DURATION_MINUTES,
            "durationUnit": "MINUTES",
            "location": "ZOOM",
            "locationLink": f"https://meet.example.test/sandbox-{call_id}",
            "allowReschedule": True,
            "deletedAt": None,
            "cancelReason": None,
            "contactId": self.seed.contact_id,
            "callType": "STRATEGY_CALL",
            "SettedClaim": {},
            "deals": [],
            "task": [],
            "utm": [],
            "questions": [],
            "secondaryAnswers": [],
        }


def _zod_type(value: object) -> str:
    """The `received` word Zod uses in its type errors."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _integer_errors(value: object) -> list[str]:
    if isinstance(value, float):
        return ["Expected integer, received float"]
    return [] if is_int(value) else [f"Expected number, received {_zod_type(value)}"]


def _string_errors(value: object) -> list[str]:
    return [] if isinstance(value, str) else [f"Expected string, received {_zod_type(value)}"]


def _field_errors(body: dict[str, Any]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for required in ("id", "dateTime", "timeZone"):
        if required not in body:
            errors[required] = ["Required"]
    if "id" in body and (problems := _integer_errors(body["id"])):
        errors["id"] = problems
    if "dateTime" in body:
        date_time = body["dateTime"]
        if not isinstance(date_time, str):
            errors["dateTime"] = _string_errors(date_time)
        elif parse_local_wall_time(date_time) is None:
            errors["dateTime"] = [_INVALID_DATETIME]
    if "timeZone" in body:
        zone = body["timeZone"]
        if not isinstance(zone, str):
            errors["timeZone"] = _string_errors(zone)
        elif not is_iana_zone(zone):
            errors["timeZone"] = ["Invalid time zone: expected an IANA name such as America/New_York"]
    for optional_text in ("rescheduleReason", "notes"):
        if optional_text in body and (problems := _string_errors(body[optional_text])):
            errors[optional_text] = problems
    if "userId" in body and (problems := _integer_errors(body["userId"])):
        errors["userId"] = problems
    return errors


class IclosedApi:
    name = "iclosed"

    def __init__(self, token: str) -> None:
        self._token = token
        self._lock = threading.Lock()
        self._calls = {
            seed.id: _EventCall(
                seed=seed,
                wall_time=datetime.fromisoformat(seed.date_time),
                time_zone=seed.time_zone,
                user_id=seed.user_id,
            )
            for seed in iclosed_seeds()
        }

    # -- error shapes --------------------------------------------------------------------------

    def error(self, status: int, message: str) -> ApiResponse:
        return ApiResponse(status, {"message": message, "errors": []})

    def fault(self, status: int, retry_after: int | None) -> ApiResponse:
        retry_header = () if retry_after is None else (("Retry-After", str(retry_after)),)
        if status != HTTPStatus.TOO_MANY_REQUESTS:
            return ApiResponse(status, {"message": HTTPStatus(status).phrase, "errors": []}, retry_header)
        # The contract's 429 always carries Retry-After and the RateLimit-* trio.
        seconds = DEFAULT_RETRY_AFTER_SECONDS if retry_after is None else retry_after
        return self._too_many_requests(RATE_LIMIT_PER_SECOND, seconds)

    def rate_limit_key(self, request: ApiRequest) -> str:
        return bearer_token(request.headers)

    def rate_limited(self, per_minute: int, retry_after: int, reset_at: int) -> ApiResponse:
        return self._too_many_requests(per_minute, retry_after)

    def _too_many_requests(self, limit: int, seconds: int) -> ApiResponse:
        """The contract's 429: Retry-After, the RateLimit-* trio (reset in seconds) and the coded body."""
        body = {
            "code": "RATE_LIMIT_EXCEEDED",
            "retryAfter": seconds,
            "message": f"Too many requests, please retry after {seconds} seconds",
        }
        headers = (
            ("Retry-After", str(seconds)),
            ("RateLimit-Limit", str(limit)),
            ("RateLimit-Remaining", "0"),
            ("RateLimit-Reset", str(seconds)),
        )
        return ApiResponse(HTTPStatus.TOO_MANY_REQUESTS, body, headers)

    def _validation_error(self, form_errors: list[str], field_errors: dict[str, list[str]]) -> ApiResponse:
        details = {"formErrors": form_errors, "fieldErrors": field_errors}
        body = {
            "message": {"status": 400, "details": details, "endpoint": RESCHEDULE_PATH, "method": "PUT"},
        }
        return ApiResponse(400, body)

    # -- routes ----------------------------------------------------------------------------------

    def _preflight(self, request: ApiRequest) -> ApiResponse | None:
        """Route, auth and content type, checked in the order an Express app would."""
        if (request.method, request.path) != ("PUT", RESCHEDULE_PATH):
            return self.error(404, f"Cannot {request.method} {request.path}")
        if not bearer_matches(request.headers, self._token):
            return self.error(401, "Unauthorized")
        if not is_json_content_type(request.headers):
            return self.error(400, "Content-Type must be application/json")
        return None

    def handle(self, request: ApiRequest) -> ApiResponse:
        if (rejection := self._preflight(request)) is not None:
            return rejection
        try:
            body = decode_json(request.body)
        except BodyError:
            return self.error(400, "Malformed JSON in request body")
        if not isinstance(body, dict):
            return self._validation_error([f"Expected object, received {_zod_type(body)}"], {})
        unknown = [key for key in body if key not in _ALLOWED_FIELDS]
        field_errors = _field_errors(body)
        if unknown or field_errors:
            form_errors = [f"Unrecognized key(s) in object: {', '.join(repr(key) for key in unknown)}"]
            return self._validation_error(form_errors if unknown else [], field_errors)
        return self._reschedule(body)

    def _reschedule(self, body: dict[str, Any]) -> ApiResponse:
        with self._lock:
            call = self._calls.get(body["id"])
            if call is None:
                return self.error(404, "Event call not found")
            call.wall_time = datetime.fromisoformat(body["dateTime"])  # format checked by _field_errors
            call.time_zone = body["timeZone"]
            call.rescheduled_by = "API"
            call.reschedule_reason = body.get("rescheduleReason")
            call.notes = body.get("notes", call.notes)
            call.user_id = body.get("userId", call.user_id)
            return ApiResponse(200, {"data": {"eventCall": call.to_json()}})

    # -- persistence (local.sandbox.persistence) -----------------------------------------------------

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {str(key): dump_fields(item) for key, item in self._calls.items()}

    def restore(self, state: dict[str, Any]) -> None:
        with self._lock:
            for key, stored in state.items():
                item = self._calls.get(int(key))
                if item is not None:
                    restore_fields(item, stored)

    # -- inspection ------------------------------------------------------------------------------

    def booking_ids(self) -> list[str]:
        with self._lock:
            return [str(call_id) for call_id in self._calls]

    def bookings_snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [call.to_json() for call in self._calls.values()]
