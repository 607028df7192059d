"""NovaCal: PUT /v1/events/{uuid} (docs/providers/novacal.md).

A reschedule is a PUT to a target state: sent twice it leaves the booking where one does, so an
unknown outcome is settled by sending it again; there is no read.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, ClassVar

from relay.errors import FieldProblem
from relay.providers.base import BearerKey, BookingIdProblem, OutboundRequest, Provider, pick
from relay.times import rfc3339_utc

if TYPE_CHECKING:
    from relay.command import RescheduleCommand

_FIELDS = {
    "start": "start",
    "end": "end",
    "timezone": "timezone",
    "time_format": "time_format",
    "form_field_answers": "answers",
}
_RESULT_FIELDS = ("id", "start", "end", "status", "canceled_at")
# Shown in messages; a valid id in the required form, so it can be copied as an example.
EXAMPLE_BOOKING_ID = "3f2c9a4e-8b1d-4c6a-9e2f-1a2b3c4d5e6f"


class NovaCal(Provider):
    name: ClassVar[str] = "novacal"
    optional_fields: ClassVar[frozenset[str]] = frozenset(
        {"end", "duration_minutes", "time_format", "answers"}
    )
    display_name: ClassVar[str] = "NovaCal"
    booking_id_format: ClassVar[str] = "a UUID"
    base_url_setting: ClassVar[str] = "novacal_base_url"
    production_base_url: ClassVar[str] = "https://api.novacal.io"
    credentials: ClassVar[type[BearerKey]] = BearerKey
    delivery_rate_per_minute: ClassVar[int] = 60
    needs_end: ClassVar[bool] = True
    example_booking_id: ClassVar[str] = EXAMPLE_BOOKING_ID
    has_read: ClassVar[bool] = False
    repeat_is_harmless: ClassVar[bool] = True

    @staticmethod
    def normalise_booking_id(raw: str) -> str:
        try:
            parsed = uuid.UUID(raw)
        except ValueError as exc:
            raise BookingIdProblem(f"NovaCal booking ids are UUIDs, e.g. '{EXAMPLE_BOOKING_ID}'.") from exc
        if len(raw) != 36:  # uuid.UUID also accepts braces, 'urn:uuid:' and bare hex
            raise BookingIdProblem(
                f"NovaCal booking ids are UUIDs in the 8-4-4-4-12 form, e.g. '{EXAMPLE_BOOKING_ID}'."
            )
        return str(parsed)

    def build_request(self, command: RescheduleCommand) -> OutboundRequest:
        if command.end is None or command.time_format is None:
            raise ValueError("a NovaCal command always has an end and a time format")
        body: dict[str, Any] = {
            "start": rfc3339_utc(command.start),
            "end": rfc3339_utc(command.end),
            "timezone": command.timezone,
            "time_format": command.time_format,
        }
        if command.answers is not None:
            body["form_field_answers"] = dict(command.answers)
        return OutboundRequest("PUT", f"/v1/events/{command.booking_id}", body)

    def summarise(self, body: Any) -> dict[str, Any]:
        return pick(body.get("data") if isinstance(body, dict) else None, _RESULT_FIELDS)

    def field_errors(self, body: Any) -> list[FieldProblem]:
        if not isinstance(body, dict):
            return []
        problems: list[FieldProblem] = []
        details = body.get("details")
        if isinstance(details, dict):
            for name, messages in details.items():
                for text in messages if isinstance(messages, list) else [messages]:
                    problems.append(
                        FieldProblem(_FIELDS.get(str(name), str(name)), str(text)[:300], "provider_rejected")
                    )
        message = body.get("message")
        if not problems and isinstance(message, str):
            problems.append(FieldProblem("", message[:300], "provider_rejected"))
        return problems
