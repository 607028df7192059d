"""Acuity Scheduling: PUT /api/v1/appointments/{id}/reschedule (docs/providers/acuity.md).

HTTP Basic with the account's numeric user id and API key; the new start goes with the offset of
the booking's time zone at that instant, so Acuity never reads it in the business's own zone.
After an unknown outcome the appointment is read (`GET /api/v1/appointments/{id}`): at the
requested `datetime` the move happened (relay.providers.settle).
"""

from __future__ import annotations

import base64
import re
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import BeforeValidator, Field, SecretStr

from relay.errors import FieldProblem
from relay.providers.base import (
    MAX_PROVIDER_MESSAGE,
    BookingIdProblem,
    BookingState,
    Credentials,
    OutboundRequest,
    Provider,
    pick,
)

if TYPE_CHECKING:
    from relay.command import RescheduleCommand

# Longest `datetime` value read (`2027-01-15T10:00:00-0500` is 24 characters).
MAX_DATETIME_CHARS = 40
_POSITIVE_INT = re.compile(r"^[1-9][0-9]{0,17}$")
# Acuity's 400 codes -> the canonical field at fault (booking-level refusals name the booking).
_FIELD_BY_CODE = {
    "required_datetime": "start",
    "invalid_datetime": "start",
    "not_available": "start",
    "not_available_min_hours_in_advance": "start",
    "not_available_max_days_in_advance": "start",
    "reschedule_too_close": "start",
    "invalid_timezone": "timezone",
    "reschedule_not_allowed": "booking_id",
    "reschedule_series": "booking_id",
    "reschedule_canceled": "booking_id",
    "invalid_calendar": "booking_id",  # the relay sends no calendarID: the booking's calendar is gone
}
# Scheduling facts only: names, emails, phones, forms and notes are never kept.
_RESULT_FIELDS = (
    "id",
    "datetime",
    "timezone",
    "duration",
    "appointmentTypeID",
    "calendarID",
    "canceled",
)


def _digits(value: Any) -> Any:
    """The user id may be stored as a JSON number or as text."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class AcuityCredentials(Credentials):
    """`{"user_id": "12345", "api_key": "...", "admin": false, "no_email": false}`: HTTP Basic.

    `admin` reschedules as an admin (skips the client's rules and availability); `no_email` tells
    Acuity not to notify the client. Both are the account owner's choice, so they live in the secret.
    """

    user_id: Annotated[str, BeforeValidator(_digits), Field(pattern=r"^[1-9][0-9]{0,17}$")]
    api_key: SecretStr = Field(min_length=1)
    admin: bool = False
    no_email: bool = False

    def headers(self) -> dict[str, str]:
        pair = f"{self.user_id}:{self.api_key.get_secret_value().strip()}"
        return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode("ascii")}

    def params(self) -> dict[str, str]:
        flags = {"admin": self.admin, "noEmail": self.no_email}
        return {name: "true" for name, on in flags.items() if on}


def _offset_datetime(command: RescheduleCommand) -> str:
    """`2027-01-15T10:00:00-0500`: wall time in the booking's zone with that instant's offset."""
    return command.local(command.start).strftime("%Y-%m-%dT%H:%M:%S%z")


def _parse_datetime(value: Any) -> datetime | None:
    """Acuity's `datetime` (`2027-01-15T10:00:00-0500`): an instant only when it carries an offset."""
    if not isinstance(value, str) or len(value) > MAX_DATETIME_CHARS:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


class Acuity(Provider):
    name: ClassVar[str] = "acuity"
    display_name: ClassVar[str] = "Acuity Scheduling"
    booking_id_format: ClassVar[str] = "a positive integer (the appointment id)"
    optional_fields: ClassVar[frozenset[str]] = frozenset()
    needs_end: ClassVar[bool] = False
    base_url_setting: ClassVar[str] = "acuity_base_url"
    example_booking_id: ClassVar[str] = "700001"
    production_base_url: ClassVar[str] = "https://acuityscheduling.com"
    credentials: ClassVar[type[AcuityCredentials]] = AcuityCredentials
    delivery_rate_per_minute: ClassVar[int] = 600  # about 10 requests/s per IP
    has_read: ClassVar[bool] = True
    # A reschedule to the time the appointment already has is not sent blind: read it first.
    repeat_is_harmless: ClassVar[bool] = False

    @staticmethod
    def normalise_booking_id(raw: str) -> str:
        if not _POSITIVE_INT.match(raw):
            raise BookingIdProblem("Acuity appointment ids are positive integers, e.g. 700001.")
        return raw

    def build_request(self, command: RescheduleCommand) -> OutboundRequest:
        body = {"datetime": _offset_datetime(command), "timezone": command.timezone}
        return OutboundRequest("PUT", f"/api/v1/appointments/{command.booking_id}/reschedule", body)

    def read_request(self, booking_id: str) -> OutboundRequest:
        return OutboundRequest("GET", f"/api/v1/appointments/{booking_id}")

    def booking_state(self, booking_id: str, body: Any) -> BookingState:
        if not isinstance(body, dict) or str(body.get("id")) != booking_id:
            return BookingState(booking_id, found=False)
        canceled = body.get("canceled") is True
        return BookingState(
            booking_id,
            active=not canceled,
            start=_parse_datetime(body.get("datetime")),
            status="canceled" if canceled else "scheduled",
        )

    def summarise(self, body: Any) -> dict[str, Any]:
        return pick(body, _RESULT_FIELDS)

    def field_errors(self, body: Any) -> list[FieldProblem]:
        if not isinstance(body, dict):
            return []
        code = body.get("error")
        message = body.get("message")
        text = message[:MAX_PROVIDER_MESSAGE] if isinstance(message, str) else "Acuity refused the request."
        if not isinstance(code, str):
            return [FieldProblem("", text, "provider_rejected")]
        return [FieldProblem(_FIELD_BY_CODE.get(code, ""), text, code[:64])]
