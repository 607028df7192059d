"""A booking's history for its source: `GET /v1/bookings/{provider}/{booking_id}/reschedules`;
and the source's recent outcomes: `GET /v1/reschedules?status=&limit=`.

Newest first, a page at a time (`limit`, and the opaque `cursor` of the previous page). Only the
calling source's attempts are listed; replays are not attempts, so they are not in it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from relay.errors import echo, invalid_field, not_found
from relay.ports import BadCursor
from relay.providers import PROVIDERS
from relay.providers.base import BookingIdProblem
from relay.reschedule.attempts import RescheduleRecord, public_view

if TYPE_CHECKING:
    from relay.ports import RecentRecords
    from relay.ports import Records as RecordStore

DEFAULT_HISTORY_LIMIT = 20
MAX_HISTORY_LIMIT = 100
MAX_LIMIT_DIGITS = 3
# ASCII digits only: str.isdigit() also takes superscripts, which int() then refuses (a 500 once).
_LIMIT = re.compile(rf"^[0-9]{{1,{MAX_LIMIT_DIGITS}}}$")


class RescheduleHistory(BaseModel):
    """One page of a booking's attempts, newest first."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    reschedules: list[RescheduleRecord]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_HISTORY_LIMIT
    if not _LIMIT.match(raw) or not 1 <= int(raw) <= MAX_HISTORY_LIMIT:
        raise invalid_field("limit", f"Use a whole number from 1 to {MAX_HISTORY_LIMIT}.")
    return int(raw)


def booking_history(
    records: RecordStore,
    source: str,
    provider: str,
    booking_id: str,
    *,
    limit: str | None,
    cursor: str | None,
) -> dict[str, Any]:
    adapter = PROVIDERS.get(provider.lower())
    if adapter is None:
        raise not_found(
            f"No provider {echo(provider)}; use one of {', '.join(sorted(PROVIDERS))}.", "provider_not_found"
        )
    try:
        canonical = adapter.normalise_booking_id(booking_id)
    except BookingIdProblem as exc:
        raise invalid_field("booking_id", str(exc)) from None
    try:
        page = records.history_page(source, adapter.name, canonical, limit=_limit(limit), cursor=cursor)
    except BadCursor:
        raise invalid_field(
            "cursor", "Use the next_cursor of this booking's previous page, as given."
        ) from None
    return {"reschedules": [public_view(item) for item in page.items], "next_cursor": page.cursor}


# GET /v1/reschedules lists final outcomes only (a REST-hook trigger's samples and polling fallback).
OUTCOME_STATUSES = ("succeeded", "failed")


class RecentOutcomes(BaseModel):
    """The source's newest final outcomes, newest first."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    reschedules: list[RescheduleRecord]


def recent_outcomes(
    records: RecentRecords, source: str, *, status: str | None, limit: str | None
) -> dict[str, Any]:
    if status is not None and status not in OUTCOME_STATUSES:
        raise invalid_field("status", f"Use one of {', '.join(OUTCOME_STATUSES)}, or leave it out for both.")
    statuses = (status,) if status else OUTCOME_STATUSES
    items = records.recent(source, statuses, limit=_limit(limit))
    return {"reschedules": [public_view(item) for item in items]}
