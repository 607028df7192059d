"""NovaCal sandbox: `PUT /v1/events/{id}`, per docs/providers/novacal.md (the contract it implements)."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
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
from local.sandbox.bookings import BOOKING_DURATION_MINUTES, NovacalSeed, novacal_seeds
from local.sandbox.persistence import dump_fields, restore_fields
from local.sandbox.timefields import format_utc, is_iana_zone, parse_rfc3339, wall_time_to_utc

_EVENT_PATH = re.compile(r"/v1/events/([^/]+)")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_ALLOWED_FIELDS = ("start", "end", "timezone", "time_format", "form_field_answers")
_TIME_FORMATS = (12, 24)
_RFC3339_HINT = "must be an RFC 3339 date-time with Z or an offset, e.g. 2026-12-01T20:00:00Z"

_ORGANIZER = {
    "first_name": "Sandbox",
    "last_name": "Host",
    "name": "Sandbox Host",
    "email": "sandbox-host@example.test",
    "username": "sandbox-host",
    "timezone": "America/New_York",
    "time_format": 12,
    "start_of_week": "monday",
    "avatar": None,
}


@dataclass
class _Event:
    seed: NovacalSeed
    start: datetime  # aware
    end: datetime  # aware
    timezone: str
    time_format: int
    form_field_answers: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        number = self.seed.number
        booker_name = f"Sandbox Booker {number}"
        booker_email = f"sandbox-booker-{number}@example.test"
        return {
            "id": self.seed.id,
            "start": format_utc(self.start),
            "end": format_utc(self.end),
            "canceled_at": None,
            "cancellation_reason": None,
            "location": f"https://meet.example.test/novacal-sandbox-{number}",
            "form_field_answers": dict(self.form_field_answers),
            "status": "accepted",
            "name": "Sandbox Discovery Call",
            "organizer": dict(_ORGANIZER),
            "hosts": [dict(_ORGANIZER)],
            "booker": {
                "name": booker_name,
                "email": booker_email,
                "timezone": self.timezone,
                "time_format": self.time_format,
            },
            "guests": [f"sandbox-guest-{number}@example.test"],
        }


def _seed_event(seed: NovacalSeed) -> _Event:
    start = wall_time_to_utc(datetime.fromisoformat(seed.start), seed.time_zone)
    return _Event(
        seed=seed,
        start=start,
        end=start + timedelta(minutes=BOOKING_DURATION_MINUTES),
        timezone=seed.time_zone,
        time_format=12,
        form_field_answers={
            "name": f"Sandbox Booker {seed.number}",
            "email": f"sandbox-booker-{seed.number}@example.test",
        },
    )


def _moment_errors(body: dict[str, Any], key: str) -> tuple[datetime | None, list[str]]:
    if key not in body:
        return None, ["is required"]
    value = body[key]
    if not isinstance(value, str):
        return None, [_RFC3339_HINT]
    moment = parse_rfc3339(value)
    return moment, [] if moment is not None else [_RFC3339_HINT]


def _answers_errors(value: object) -> list[str]:
    if not isinstance(value, dict):
        return ["must be an object"]
    bad = sorted(key for key, answer in value.items() if not isinstance(answer, str))
    return [f"answer for {key!r} must be a string" for key in bad]


def _validate(body: dict[str, Any]) -> tuple[dict[str, list[str]], tuple[datetime, datetime] | None]:
    """Per-field problems, and the parsed (start, end) when there are none."""
    details: dict[str, list[str]] = {
        key: ["is not a permitted field"] for key in body if key not in _ALLOWED_FIELDS
    }
    start, start_errors = _moment_errors(body, "start")
    end, end_errors = _moment_errors(body, "end")
    if start is not None and end is not None and end <= start:
        end_errors = ["must be after start"]
    if start_errors:
        details["start"] = start_errors
    if end_errors:
        details["end"] = end_errors
    if "timezone" not in body:
        details["timezone"] = ["is required"]
    elif not is_iana_zone(body["timezone"]):
        details["timezone"] = ["must be an IANA time zone name, e.g. America/New_York"]
    if "time_format" not in body:
        details["time_format"] = ["is required"]
    elif not is_int(body["time_format"]) or body["time_format"] not in _TIME_FORMATS:
        details["time_format"] = ["must be the integer 12 or 24"]
    if "form_field_answers" in body and (problems := _answers_errors(body["form_field_answers"])):
        details["form_field_answers"] = problems
    window = (start, end) if start is not None and end is not None and not details else None
    return details, window


class NovacalApi:
    name = "novacal"

    def __init__(self, token: str) -> None:
        self._token = token
        # More accounts' keys (the local stack's `paced` account), each its own rate-limit key.
        self._more_tokens: set[str] = set()
        self._lock = threading.Lock()
        self._events = {seed.id: _seed_event(seed) for seed in novacal_seeds()}

    # -- error shapes --------------------------------------------------------------------------

    def error(self, status: int, message: str, details: dict[str, Any] | None = None) -> ApiResponse:
        body: dict[str, Any] = {"success": False, "message": message}
        if details is not None:
            body["details"] = details
        return ApiResponse(status, body)

    def fault(self, status: int, retry_after: int | None) -> ApiResponse:
        too_many = status == HTTPStatus.TOO_MANY_REQUESTS
        message = "Rate limit exceeded" if too_many else HTTPStatus(status).phrase
        headers = () if retry_after is None else (("Retry-After", str(retry_after)),)
        return ApiResponse(status, {"success": False, "message": message}, headers)

    def rate_limit_key(self, request: ApiRequest) -> str:
        return bearer_token(request.headers)

    def rate_limited(self, per_minute: int, retry_after: int, reset_at: int) -> ApiResponse:
        return self.fault(HTTPStatus.TOO_MANY_REQUESTS, retry_after)

    def _invalid(self, details: dict[str, list[str]]) -> ApiResponse:
        return self.error(422, "Validation failed", details)

    # -- routes ----------------------------------------------------------------------------------

    def allow_token(self, token: str) -> None:
        """Accept another account's key as well."""
        self._more_tokens.add(token)

    def _preflight(self, request: ApiRequest) -> ApiResponse | None:
        """Route, auth, id format and content type, before the body is looked at."""
        route = _EVENT_PATH.fullmatch(request.path)
        if route is None or request.method != "PUT":
            return self.error(404, "Not found")
        if not any(bearer_matches(request.headers, t) for t in {self._token, *self._more_tokens}):
            return self.error(401, "Unauthorized")
        if _UUID.fullmatch(route.group(1)) is None:
            return self.error(404, "Event not found")
        if not is_json_content_type(request.headers):
            return self._invalid({"body": ["Content-Type must be application/json"]})
        return None

    def handle(self, request: ApiRequest) -> ApiResponse:
        if (rejection := self._preflight(request)) is not None:
            return rejection
        event_id = request.path.rsplit("/", 1)[1]
        try:
            body = decode_json(request.body)
        except BodyError:
            return self._invalid({"body": ["must be a valid JSON document"]})
        if not isinstance(body, dict):
            return self._invalid({"body": ["must be a JSON object"]})
        details, window = _validate(body)
        if window is None:
            return self._invalid(details)
        return self._reschedule(event_id.lower(), window, body)

    def _reschedule(
        self, event_id: str, window: tuple[datetime, datetime], body: dict[str, Any]
    ) -> ApiResponse:
        with self._lock:
            event = self._events.get(event_id)
            if event is None:
                return self.error(404, "Event not found")
            event.start, event.end = window
            event.timezone = body["timezone"]
            event.time_format = body["time_format"]
            event.form_field_answers.update(body.get("form_field_answers", {}))
            return ApiResponse(200, {"success": True, "data": event.to_json()})

    # -- persistence (local.sandbox.persistence) -----------------------------------------------------

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {str(key): dump_fields(item) for key, item in self._events.items()}

    def restore(self, state: dict[str, Any]) -> None:
        with self._lock:
            for key, stored in state.items():
                item = self._events.get(str(key))
                if item is not None:
                    restore_fields(item, stored)

    # -- inspection ------------------------------------------------------------------------------

    def booking_ids(self) -> list[str]:
        with self._lock:
            return list(self._events)

    def bookings_snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [event.to_json() for event in self._events.values()]
