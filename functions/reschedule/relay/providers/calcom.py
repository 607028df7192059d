"""Cal.com API v2: POST /v2/bookings/{uid}/reschedule (contracts/calcom.md).

A move creates a new booking with a new uid (the old one is cancelled), so the answer names the new
uid; a second move of the old uid is a 400 that names it. The booking is read first
(`GET /v2/bookings/{uid}`) so recurring and seated bookings, which the relay cannot move, are
refused before anything changes.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from relay.errors import FieldProblem
from relay.providers.base import (
    MAX_PROVIDER_MESSAGE,
    BearerKey,
    BookingIdProblem,
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
# "... already rescheduled to booking with uid=X ..." (the 400 for a spent uid names the new one).
_MOVED_TO = re.compile(r"rescheduled to\b.*?\buid[=: ]+([A-Za-z0-9_-]{1,64})", re.IGNORECASE)
_STATUS_WORDS = re.compile(r"\b(cancelled|canceled|rejected|awaiting_host)\b", re.IGNORECASE)
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
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return message if isinstance(message, str) else ""


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
    delivery_rate_per_minute: ClassVar[int] = 120
    reads_before_move: ClassVar[bool] = True
    booking_id_changes: ClassVar[bool] = True

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

    def read_booking(self, booking_id: str) -> OutboundRequest:
        return OutboundRequest("GET", f"/v2/bookings/{booking_id}", headers=self._headers())

    def movable(self, body: Any) -> Refusal | None:
        data = _data(body)
        if isinstance(data, list) or not isinstance(data, dict) or data.get("recurringBookingUid"):
            return _not_movable(
                "booking_recurring",
                "This Cal.com booking is part of a recurring series; the relay does not move "
                "recurring bookings. Reschedule it in Cal.com.",
            )
        attendees = data.get("attendees")
        if isinstance(attendees, list) and any(isinstance(a, dict) and a.get("seatUid") for a in attendees):
            return _not_movable(
                "booking_seated",
                "This Cal.com booking is a seated event; the relay does not move seats. "
                "Reschedule the seat in Cal.com.",
            )
        moved_to = data.get("rescheduledToUid")
        if isinstance(moved_to, str) and _UID.match(moved_to):
            return Refusal(code="booking_moved_elsewhere", detail="", moved_to=moved_to)
        status = data.get("status")
        if status not in RESCHEDULABLE:
            return _not_movable(
                "booking_not_reschedulable",
                f"This Cal.com booking is {status!s:.32} and cannot be rescheduled; "
                "only accepted and pending bookings can. Book a new time instead.",
            )
        return None

    def starts_at(self, body: Any, start: datetime) -> bool:
        data = _data(body)
        value = data.get("start") if isinstance(data, dict) else None
        try:
            return isinstance(value, str) and datetime.fromisoformat(value) == start
        except ValueError:
            return False

    def new_booking_id(self, body: Any) -> str | None:
        uid = self._booking(body).get("uid")
        return uid if isinstance(uid, str) else None

    @staticmethod
    def _booking(body: Any) -> dict[str, Any]:
        data = _data(body)
        return data if isinstance(data, dict) else {}

    def summarise(self, body: Any) -> dict[str, Any]:
        return pick(self._booking(body), _RESULT_FIELDS)

    def refusal(self, status: int, body: Any) -> Refusal | None:
        message = _message(body)
        if status != 400 or not message:
            return None
        moved = _MOVED_TO.search(message)
        if moved:
            return Refusal(
                code="booking_moved_elsewhere", detail=message[:MAX_PROVIDER_MESSAGE], moved_to=moved.group(1)
            )
        if "seat" in message.lower():
            return _not_movable(
                "booking_seated",
                "This Cal.com booking is a seated event; the relay does not move seats.",
                message,
            )
        words = _STATUS_WORDS.search(message)
        if words:
            return _not_movable(
                "booking_not_reschedulable",
                f"This Cal.com booking is {words.group(1).lower()} and cannot be rescheduled; "
                "only accepted and pending bookings can. Book a new time instead.",
                message,
            )
        return None

    def field_errors(self, body: Any) -> list[FieldProblem]:
        message = _message(body)
        if not message:
            return []
        # class-validator names the property first ("start must be ...", "property x should not exist").
        for native, canonical in _FIELDS.items():
            if re.search(rf"\b{native}\b", message):
                return [FieldProblem(canonical, message[:MAX_PROVIDER_MESSAGE], "provider_rejected")]
        return [FieldProblem("", message[:MAX_PROVIDER_MESSAGE], "provider_rejected")]
