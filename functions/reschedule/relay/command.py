"""The command both doors hand the use case: a validated, normalised reschedule, as plain data.

It names its provider by name only; whoever runs it looks the adapter up (relay.composition wires them).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

# What a person wrote or who they are: carried to the provider, never in a queue message (the
# ledger keeps them beside a queued request's key until it ends; docs/security.md).
PERSONAL_FIELDS = frozenset({"reason", "notes", "rescheduled_by", "answers"})


class RescheduleCommand(BaseModel):
    """The provider chosen, the booking id canonical, and the times as UTC instants (so arithmetic and
    comparisons are never fooled by DST) plus the zone they are meant in.
    """

    model_config = ConfigDict(frozen=True)

    provider: str
    account: str
    booking_id: str
    start: datetime
    end: datetime | None
    timezone: str
    reason: str | None = None
    notes: str | None = None
    user_id: int | None = None
    rescheduled_by: str | None = None
    time_format: int | None = None
    answers: dict[str, str] | None = None
    # Checked and answered, never sent (relay.reschedule.dry_run); not part of what makes two the same.
    dry_run: bool = False

    def local(self, instant: datetime) -> datetime:
        """The instant as wall time in the booking's zone."""
        return instant.astimezone(ZoneInfo(self.timezone))

    def personal(self) -> dict[str, Any]:
        """The personal fields this command carries (only those set)."""
        return self.model_dump(mode="json", include=set(PERSONAL_FIELDS), exclude_none=True)

    def without_personal(self) -> RescheduleCommand:
        return self.model_copy(update=dict.fromkeys(PERSONAL_FIELDS))

    def key_material(self) -> dict[str, Any]:
        """What makes two commands the same reschedule when the caller sends no idempotency key."""
        return self.model_dump(
            mode="json", include={"provider", "account", "booking_id", "start", "end", "timezone"}
        )
