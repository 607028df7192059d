"""iClosed: PUT /v1/eventCalls/reschedule (docs/providers/iclosed.md).

A reschedule is a PUT to a target state: sent twice it leaves the booking where one does, so an
unknown outcome is settled by sending it again; there is no read.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar

from relay.errors import FieldProblem
from relay.providers.base import BearerKey, BookingIdProblem, OutboundRequest, Provider, pick
from relay.times import wall_time

if TYPE_CHECKING:
    from relay.command import RescheduleCommand

EXAMPLE_BOOKING_ID = "1001"  # shown in messages; a valid id
_POSITIVE_INT = re.compile(r"^[1-9][0-9]{0,17}$")  # < 2**63, so it fits iClosed's integer id
# iClosed's field names -> the relay's canonical names, for mapping its validation errors.
_FIELDS = {
    "id": "booking_id",
    "dateTime": "start",
    "timeZone": "timezone",
    "rescheduleReason": "reason",
    "notes": "notes",
    "userId": "user_id",
}
_RESULT_FIELDS = (
    "id",
    "eventId",
    "dateTime",
    "dateTimeUTC",
    "timeZone",
    "eventType",
    "duration",
    "durationUnit",
)


class IClosedKey(BearerKey):
    """`{"api_key": "iclosed_..."}`, sent as a Bearer token."""

    def warnings(self) -> list[str]:
        # iClosed's own docs disagree on the separator, so the key is sent as stored either way.
        if not self.api_key.get_secret_value().startswith("iclosed"):
            return ["The iClosed API key does not start with 'iclosed'; check the stored secret."]
        return []


class IClosed(Provider):
    name: ClassVar[str] = "iclosed"
    display_name: ClassVar[str] = "iClosed"
    booking_id_format: ClassVar[str] = "a positive integer"
    optional_fields: ClassVar[frozenset[str]] = frozenset({"reason", "notes", "user_id"})
    base_url_setting: ClassVar[str] = "iclosed_base_url"
    production_base_url: ClassVar[str] = "https://public.api.iclosed.io"
    credentials: ClassVar[type[BearerKey]] = IClosedKey
    delivery_rate_per_minute: ClassVar[int] = 1200  # 20 requests/s
    needs_end: ClassVar[bool] = False
    example_booking_id: ClassVar[str] = EXAMPLE_BOOKING_ID
    has_read: ClassVar[bool] = False
    repeat_is_harmless: ClassVar[bool] = True

    @staticmethod
    def normalise_booking_id(raw: str) -> str:
        if not _POSITIVE_INT.match(raw):
            raise BookingIdProblem(f"iClosed booking ids are positive integers, e.g. {EXAMPLE_BOOKING_ID}.")
        return raw

    def build_request(self, command: RescheduleCommand) -> OutboundRequest:
        body: dict[str, Any] = {
            "id": int(command.booking_id),
            "dateTime": wall_time(command.local(command.start)),
            "timeZone": command.timezone,
        }
        if command.reason is not None:
            body["rescheduleReason"] = command.reason
        if command.notes is not None:
            body["notes"] = command.notes
        if command.user_id is not None:
            body["userId"] = command.user_id
        return OutboundRequest("PUT", "/v1/eventCalls/reschedule", body)

    def summarise(self, body: Any) -> dict[str, Any]:
        data = body.get("data") if isinstance(body, dict) else None
        call = data.get("eventCall") if isinstance(data, dict) else None
        return pick(call, _RESULT_FIELDS)

    def field_errors(self, body: Any) -> list[FieldProblem]:
        message = body.get("message") if isinstance(body, dict) else None
        details = message.get("details") if isinstance(message, dict) else None
        problems: list[FieldProblem] = []
        if isinstance(details, dict):
            for name, messages in (details.get("fieldErrors") or {}).items():
                for text in messages if isinstance(messages, list) else [messages]:
                    problems.append(
                        FieldProblem(_FIELDS.get(str(name), str(name)), str(text)[:300], "provider_rejected")
                    )
            for text in details.get("formErrors") or []:
                problems.append(FieldProblem("", str(text)[:300], "provider_rejected"))
        elif isinstance(message, str):
            problems.append(FieldProblem("", message[:300], "provider_rejected"))
        return problems
