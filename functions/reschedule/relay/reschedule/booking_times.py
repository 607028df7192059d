"""A booking's current start, read from its provider, for the hosted reschedule page.

Only providers whose adapter builds a read request (`read_request`: Cal.com and Acuity) are read;
for the others, and on any failure, the answer is None and the page simply leaves the line out.
One quick attempt within READ_BUDGET_SECONDS: a person is waiting.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aws_lambda_powertools import Logger
from pydantic import ValidationError

from relay.deadline import Deadline
from relay.errors import RelayError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from relay.ports import Secrets
    from relay.providers.base import Provider
    from relay.providers.client import ProviderClient

logger = Logger(child=True)

READ_BUDGET_SECONDS = 3.0


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _in_zone(start: datetime | None, zone: Any) -> tuple[datetime, str | None] | None:
    """The start as wall time in its zone (when the zone is a real one), and the zone's name."""
    if start is None:
        return None
    try:
        return (start.astimezone(ZoneInfo(zone)), zone) if isinstance(zone, str) else (start, None)
    except (ZoneInfoNotFoundError, ValueError):
        return start, None


def start_of(body: Any) -> tuple[datetime, str | None] | None:
    """(start, its zone) from a read booking: Cal.com's `data.start` (UTC) in the first attendee's
    `timeZone`, or Acuity's `datetime` (with its offset) in its `timezone`."""
    if not isinstance(body, dict):
        return None
    data = body.get("data")
    if isinstance(data, dict):
        attendees = data.get("attendees")
        first = attendees[0] if isinstance(attendees, list) and attendees else {}
        return _in_zone(_parse(data.get("start")), first.get("timeZone") if isinstance(first, dict) else None)
    return _in_zone(_parse(body.get("datetime")), body.get("timezone"))


class BookingTimes:
    """`read_booking_start(provider, account, booking_id)`: what the hosted page shows as "now"."""

    def __init__(
        self,
        *,
        secrets_prefix: str,
        secrets: Secrets,
        providers: ProviderClient,
        adapters: Mapping[str, Provider],
    ) -> None:
        self._prefix = secrets_prefix
        self._secrets = secrets
        self._providers = providers
        self._adapters = adapters

    def read_booking_start(
        self, provider: str, account: str, booking_id: str
    ) -> tuple[datetime, str | None] | None:
        adapter = self._adapters.get(provider)
        request = adapter.read_request(booking_id) if adapter is not None else None
        if adapter is None or request is None:
            return None
        try:
            secret = self._secrets.get_json(f"{self._prefix}/providers/{provider}/{account}")
            credentials = adapter.credentials.model_validate(secret)
            reply = self._providers.send(adapter, request, credentials, Deadline.within(READ_BUDGET_SECONDS))
        except (RelayError, ValidationError) as error:
            reason = error.code if isinstance(error, RelayError) else "credentials_invalid"
            logger.info("booking read failed", extra={"provider": provider, "reason": reason})
            return None
        return start_of(reply.body)
