"""Reads and cancel, for the source that made a request: `GET /v1/reschedules/{id}`, a booking's
history, and `DELETE /v1/reschedules/{id}` (a queued request, cancelled in the ledger)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from relay.errors import RelayError, conflict, not_found, unavailable
from relay.ports import LedgerUnavailable, LockNotHeld
from relay.reschedule.attempts import (
    QUEUED,
    AttemptRecord,
    Cancelled,
    Delivery,
    attempt_record,
    public_view,
    summary,
)
from relay.reschedule.history import booking_history
from relay.times import utc_now

if TYPE_CHECKING:
    from relay.ports import Ledger, Records
    from relay.settings import Settings

logger = Logger(child=True)

# What a cancelled record keeps of the queued one (the command itself is only in the queue).
_KEPT_ON_CANCEL = ("provider", "account", "booking_id", "booking_key", "start", "end", "timezone")


def not_queued(status: object) -> RelayError:
    """The refusal to cancel a reschedule that is not (or no longer) waiting in the queue."""
    return conflict(f"This reschedule is {status}; only a queued one can be cancelled.", "not_queued")


class Queries:
    def __init__(self, settings: Settings, *, records: Records, ledger: Ledger) -> None:
        self._settings = settings
        self._records = records
        self._ledger = ledger

    def get(self, source: str, reschedule_id: str) -> dict[str, Any]:
        return public_view(self.get_stored(source, reschedule_id))

    def get_stored(self, source: str, reschedule_id: str) -> dict[str, Any]:
        """The whole stored record of this source's attempt (private fields too: not for answers)."""
        record = self._records.get(reschedule_id) if _looks_like_id(reschedule_id) else None
        if record is None or record.get("source") != source:  # another source's record: not found
            raise not_found("No reschedule with this id.", "reschedule_not_found")
        return record

    def history(
        self, source: str, provider: str, booking_id: str, *, limit: str | None, cursor: str | None
    ) -> dict[str, Any]:
        return booking_history(self._records, source, provider, booking_id, limit=limit, cursor=cursor)

    def cancel(self, source: str, reschedule_id: str) -> dict[str, Any]:
        """Cancel a queued request of this source: `cancelled`, its key released, never delivered."""
        record = self.get_stored(source, reschedule_id)
        if record.get("status") != QUEUED:
            raise not_queued(record.get("status"))
        now = utc_now()
        item_id = str(record.get("idempotency_record", ""))
        delivery = Delivery(
            mode=record.get("delivery", "async"),
            queued_at=_parse(record.get("queued_at")) or now,
            idempotency_record=item_id,
            attempts=int(record.get("attempts") or 0),
            last_error=record.get("last_error"),
            last_error_detail=record.get("last_error_detail"),
            finished_at=now,
        )
        cancelled: AttemptRecord = attempt_record(
            reschedule_id=reschedule_id,
            source=source,
            attempted_at=_parse(record.get("attempted_at")) or now,
            retention_days=self._settings.record_retention_days,
            outcome=Cancelled(),
            delivery=delivery,
        )
        for field in _KEPT_ON_CANCEL:
            if field in record:
                cancelled[field] = record[field]  # type: ignore[literal-required]
        try:
            self._ledger.cancel(cancelled, item_id=item_id, now=int(now.timestamp()))
        except LedgerUnavailable:
            raise unavailable(
                "The relay's storage is unavailable; try again shortly.", "storage_unavailable", 2
            ) from None
        except LockNotHeld:
            raise conflict(
                "This reschedule is being delivered now; it can no longer be cancelled.",
                "delivering",
                retry_after=1,
            ) from None
        logger.info("reschedule cancelled", extra=summary(cancelled))
        return public_view(dict(cancelled))


def _looks_like_id(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def _parse(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None
