"""Acuity Scheduling sandbox: `PUT /api/v1/appointments/{id}/reschedule` and
`GET /api/v1/appointments/{id}`, per docs/providers/acuity.md (the contract it implements).

HTTP Basic with the numeric user id and the API key (the sandbox's token is `<user id>:<api key>`).
Deterministic refusals: the seeded canceled appointment (`reschedule_canceled`), the one clients may
not move (`reschedule_not_allowed` unless `admin=true`), the series one (`reschedule_series`), and,
unless `admin=true`, a start less than MIN_HOURS_IN_ADVANCE ahead, more than MAX_DAYS_IN_ADVANCE
ahead, off the SLOT_MINUTES grid, or at BUSY_SLOT_UTC (`not_available...`).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import threading
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

from local.sandbox.api import (
    ApiRequest,
    ApiResponse,
    BodyError,
    decode_json,
    is_int,
    is_json_content_type,
)
from local.sandbox.bookings import (
    ACUITY_APPOINTMENT_TYPES,
    ACUITY_CALENDARS,
    ACUITY_IDS,
    AcuitySeed,
    acuity_seeds,
)
from local.sandbox.persistence import dump_fields, restore_fields
from local.sandbox.timefields import is_iana_zone, parse_iso8601_with_offset, wall_time_to_utc

# The account's scheduling limits (Acuity: "minimum/maximum time before an appointment").
MIN_HOURS_IN_ADVANCE = 2
MAX_DAYS_IN_ADVANCE = 7300  # 20 years: the seeds (2031) and tests' targets stay well inside
# Appointments start on this grid; any other minute is not an open slot.
SLOT_MINUTES = 15
# One slot that is always taken, so `not_available` can be provoked on the grid.
BUSY_SLOT_UTC = datetime(2031, 6, 2, 15, 0, tzinfo=UTC)

_RESCHEDULE_PATH = re.compile(r"/api/v1/appointments/([^/]+)/reschedule")
_APPOINTMENT_PATH = re.compile(r"/api/v1/appointments/([^/]+)")
_POSITIVE_INT = re.compile(r"[1-9]\d{0,17}")
_ALLOWED_FIELDS = ("datetime", "calendarID", "timezone")
_CREATED = datetime(2030, 1, 2, 9, 0, tzinfo=UTC)


def _acuity_datetime(moment: datetime) -> str:
    """Acuity's own rendering: `2031-03-03T10:00:00-0500` (offset without a colon)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S%z")


def _clock(moment: datetime) -> str:
    return moment.strftime("%I:%M%p").lstrip("0").lower()  # `9:00am`


@dataclass
class _Appointment:
    seed: AcuitySeed
    start: datetime  # aware
    calendar_id: int
    timezone: str  # the client's

    def to_json(self) -> dict[str, Any]:
        number, appointment_id = self.seed.number, self.seed.id
        type_name, minutes = ACUITY_APPOINTMENT_TYPES[self.seed.appointment_type_id]
        calendar_name, calendar_zone = ACUITY_CALENDARS[self.calendar_id]
        local = self.start.astimezone(zoneinfo.ZoneInfo(calendar_zone))
        end = local + timedelta(minutes=minutes)
        created = _CREATED.astimezone(zoneinfo.ZoneInfo(calendar_zone))
        answer = f"sandbox answer {number}"
        return {
            "id": appointment_id,
            "firstName": "Sandbox",
            "lastName": f"Client {number}",
            "phone": f"555-01{number:02d}",
            "email": f"sandbox-client-{number}@example.test",
            "date": f"{local:%B} {local.day}, {local.year}",
            "time": _clock(local),
            "endTime": _clock(end),
            "dateCreated": f"{created:%B} {created.day}, {created.year}",
            "datetimeCreated": _acuity_datetime(created),
            "datetime": _acuity_datetime(local),
            "price": "0.00",
            "priceSold": "0.00",
            "paid": "no",
            "amountPaid": "0.00",
            "type": type_name,
            "appointmentTypeID": self.seed.appointment_type_id,
            "classID": None,
            "addonIDs": [],
            "category": "",
            "duration": str(minutes),
            "calendar": calendar_name,
            "calendarID": self.calendar_id,
            "calendarTimezone": calendar_zone,
            "timezone": self.timezone,
            "certificate": None,
            "confirmationPage": f"https://app.example.test/sandbox-acuity/confirm/{appointment_id}",
            "location": "",
            "notes": "",
            "canceled": self.seed.canceled,
            "canClientCancel": True,
            "canClientReschedule": self.seed.can_client_reschedule,
            "labels": None,
            "forms": [
                {
                    "id": 1,
                    "name": "Sandbox Intake",
                    "values": [
                        {"id": number, "fieldID": 1, "name": "What should we discuss?", "value": answer}
                    ],
                }
            ],
            "formsText": f"Sandbox Intake\nWhat should we discuss?: {answer}",
        }


def _seed_appointment(seed: AcuitySeed) -> _Appointment:
    start = wall_time_to_utc(datetime.fromisoformat(seed.start), seed.time_zone)
    return _Appointment(seed=seed, start=start, calendar_id=seed.calendar_id, timezone=seed.time_zone)


def _basic_credentials(headers: dict[str, str] | Any) -> tuple[str, str] | None:
    """(user id, key) from `Authorization: Basic ...`, or None when absent or malformed."""
    scheme, _, encoded = headers.get("authorization", "").partition(" ")
    if scheme != "Basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, separator, key = decoded.partition(":")
    return (user, key) if separator else None


def _flag(request: ApiRequest, name: str) -> bool:
    return request.query.get(name, ["false"])[-1] == "true"


class AcuityApi:
    name = "acuity"

    def __init__(self, token: str) -> None:
        user_id, separator, api_key = token.partition(":")
        if not separator or not user_id.isdigit() or not api_key:
            raise ValueError("the Acuity sandbox token is '<numeric user id>:<api key>'")
        self._credentials = f"{user_id}:{api_key}"
        self._lock = threading.Lock()
        self._appointments = {seed.id: _seed_appointment(seed) for seed in acuity_seeds()}

    # -- error shapes --------------------------------------------------------------------------

    def error(self, status: int, message: str, code: str | None = None) -> ApiResponse:
        if code is None:
            code = HTTPStatus(status).phrase.lower().replace(" ", "_")
        return ApiResponse(status, {"status_code": status, "message": message, "error": code})

    def fault(self, status: int, retry_after: int | None) -> ApiResponse:
        headers = () if retry_after is None else (("Retry-After", str(retry_after)),)
        failed = self.error(status, HTTPStatus(status).phrase)
        return ApiResponse(failed.status, failed.body, headers)

    def rate_limit_key(self, request: ApiRequest) -> str:
        credentials = _basic_credentials(request.headers)
        return credentials[0] if credentials else ""

    def rate_limited(self, per_minute: int, retry_after: int, reset_at: int) -> ApiResponse:
        # Acuity documents the 429 and its error shape, no Retry-After or rate-limit headers.
        return self.error(429, HTTPStatus.TOO_MANY_REQUESTS.phrase)

    def _bad_request(self, code: str, message: str) -> ApiResponse:
        return self.error(400, message, code)

    # -- routes ----------------------------------------------------------------------------------

    def _preflight(self, request: ApiRequest) -> ApiResponse | None:
        pattern = {"PUT": _RESCHEDULE_PATH, "GET": _APPOINTMENT_PATH}.get(request.method)
        route = pattern.fullmatch(request.path) if pattern is not None else None
        if route is None or _POSITIVE_INT.fullmatch(route.group(1)) is None:
            return self.error(404, "The requested resource was not found.", "not_found")
        credentials = _basic_credentials(request.headers)
        presented = ":".join(credentials) if credentials else ""
        if not hmac.compare_digest(presented.encode(), self._credentials.encode()):
            return self.error(401, "Invalid credentials: HTTP Basic with your user id and API key.")
        if request.method == "PUT" and not is_json_content_type(request.headers):
            return self._bad_request("invalid_request", "Content-Type must be application/json.")
        return None

    def handle(self, request: ApiRequest) -> ApiResponse:
        if (rejection := self._preflight(request)) is not None:
            return rejection
        if request.method == "GET":
            return self._read(int(request.path.split("/")[4]))
        try:
            body = decode_json(request.body)
        except BodyError:
            return self._bad_request("invalid_request", "The request body is not valid JSON.")
        if not isinstance(body, dict):
            return self._bad_request("invalid_request", "The request body must be a JSON object.")
        appointment_id = int(request.path.split("/")[4])
        return self._reschedule(appointment_id, body, admin=_flag(request, "admin"))

    def _field_problem(self, body: dict[str, Any]) -> ApiResponse | None:
        unknown = sorted(key for key in body if key not in _ALLOWED_FIELDS)
        if unknown:  # the sandbox is stricter than Acuity here, to catch a relay sending stray fields
            return self._bad_request("invalid_request", f"Unknown fields: {', '.join(unknown)}.")
        value = body.get("datetime")
        if value is None or value == "":
            return self._bad_request("required_datetime", 'The "datetime" field is required.')
        if not isinstance(value, str) or parse_iso8601_with_offset(value) is None:
            message = 'The "datetime" must be ISO 8601 with its UTC offset, e.g. 2027-01-15T10:00:00-0500.'
            return self._bad_request("invalid_datetime", message)
        if "timezone" in body and not is_iana_zone(body["timezone"]):
            return self._bad_request("invalid_timezone", 'The "timezone" must be an IANA time zone name.')
        calendar_id = body.get("calendarID")
        if (
            "calendarID" in body
            and calendar_id is not None
            and (not is_int(calendar_id) or calendar_id not in ACUITY_CALENDARS)
        ):
            return self._bad_request("invalid_calendar", "The calendar does not exist or is not available.")
        return None

    def _refusal(self, appointment: _Appointment, start: datetime, *, admin: bool) -> ApiResponse | None:
        """The first rule the move breaks; an admin skips the client's rules and availability."""
        seed = appointment.seed
        now = datetime.now(UTC)
        off_grid = bool(start.minute % SLOT_MINUTES or start.second or start.microsecond)
        rules = (
            (seed.canceled, "reschedule_canceled", "Canceled appointments cannot be rescheduled."),
            (seed.series, "reschedule_series", "Appointments in a series cannot be rescheduled."),
            (
                not admin and not seed.can_client_reschedule,
                "reschedule_not_allowed",
                "This appointment cannot be rescheduled.",
            ),
            (
                not admin and start < now + timedelta(hours=MIN_HOURS_IN_ADVANCE),
                "not_available_min_hours_in_advance",
                f"The time must be at least {MIN_HOURS_IN_ADVANCE} hours in advance.",
            ),
            (
                not admin and start > now + timedelta(days=MAX_DAYS_IN_ADVANCE),
                "not_available_max_days_in_advance",
                f"The time must be at most {MAX_DAYS_IN_ADVANCE} days in advance.",
            ),
            (
                not admin and (off_grid or start == BUSY_SLOT_UTC),
                "not_available",
                "The time is not available.",
            ),
        )
        broken = next(((code, message) for applies, code, message in rules if applies), None)
        return None if broken is None else self._bad_request(*broken)

    def _read(self, appointment_id: int) -> ApiResponse:
        with self._lock:
            appointment = self._appointments.get(appointment_id)
            if appointment is None:
                return self.error(404, "Appointment not found.", "not_found")
            return ApiResponse(200, appointment.to_json())

    def _reschedule(self, appointment_id: int, body: dict[str, Any], *, admin: bool) -> ApiResponse:
        with self._lock:
            appointment = self._appointments.get(appointment_id)
            if appointment is None:
                return self.error(404, "Appointment not found.", "not_found")
            if (problem := self._field_problem(body)) is not None:
                return problem
            start = parse_iso8601_with_offset(body["datetime"]) or appointment.start  # checked above
            if (refusal := self._refusal(appointment, start.astimezone(UTC), admin=admin)) is not None:
                return refusal
            appointment.start = start.astimezone(UTC)
            if body.get("calendarID") is not None:  # null lets Acuity pick: the sandbox keeps the calendar
                appointment.calendar_id = body["calendarID"]
            appointment.timezone = body.get("timezone", appointment.timezone)
            return ApiResponse(200, appointment.to_json())

    # -- persistence (local.sandbox.persistence) -----------------------------------------------------

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {str(key): dump_fields(item) for key, item in self._appointments.items()}

    def restore(self, state: dict[str, Any]) -> None:
        with self._lock:
            for key, stored in state.items():
                item = self._appointments.get(int(key))
                if item is not None:
                    restore_fields(item, stored)

    # -- inspection ------------------------------------------------------------------------------

    def booking_ids(self) -> list[str]:
        # The appointments that can be moved; the refusal seeds are in the snapshot.
        return [str(appointment_id) for appointment_id in ACUITY_IDS]

    def bookings_snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [appointment.to_json() for appointment in self._appointments.values()]
