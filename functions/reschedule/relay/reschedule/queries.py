"""Reads and cancel, for the source that made a request: `GET /v1/reschedules/{id}`, a booking's
history, and `DELETE /v1/reschedules/{id}` (a queued request, cancelled in the ledger)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from relay.errors import RelayError, conflict, not_found, unavailable
from relay.ports import LedgerUnavailable, LockNotHeld, Stopping
from relay.reschedule.attempts import (
    QUEUED,
    AttemptRecord,
    Cancelled,
    public_view,
    summary,
)
from relay.reschedule.history import booking_history
from relay.reschedule.stops import ended_record
from relay.times import utc_now

if TYPE_CHECKING:
    from relay.deadline import Deadline
    from relay.ports import Ledger, Records
    from relay.settings import Settings

logger = Logger(child=True)

# A cancel that comes while a provider call is under way waits this long at most for that call's
# outcome (a provider answers within its read timeout), reading the record this often.
CANCEL_SETTLE_SECONDS = 12.0
CANCEL_SETTLE_POLL_SECONDS = 0.25
# Kept back from the request's deadline to answer after the wait.
CANCEL_ANSWER_MARGIN_SECONDS = 1.0
_FINAL = ("succeeded", "failed", "cancelled")


def cancel_too_late(reschedule_id: str) -> RelayError:
    """The cancel came while a provider call was under way, and that call moved the booking."""
    error = conflict(
        "Too late to cancel: a provider call already under way when the cancel came moved the "
        "booking; the reschedule succeeded.",
        "cancel_too_late",
    )
    error.extra["reschedule_id"] = reschedule_id
    return error


def not_queued(status: object) -> RelayError:
    """The refusal to cancel a reschedule that is not (or no longer) waiting in the queue."""
    return conflict(f"This reschedule is {status}; only a queued one can be cancelled.", "not_queued")


class Queries:
    def __init__(
        self,
        settings: Settings,
        *,
        records: Records,
        ledger: Ledger,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._settings = settings
        self._records = records
        self._ledger = ledger
        self._sleep = sleep

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

    def cancel(self, source: str, reschedule_id: str, deadline: Deadline | None = None) -> dict[str, Any]:
        """Cancel a queued request of this source: `cancelled`, its key released, never delivered.

        Accepted at any moment before a provider call has succeeded. No call is under way: cancelled
        now, and no call starts after (each is guarded). A call is under way: the stop is noted (no
        further call starts) and its outcome awaited: cancelled, or `cancel_too_late` (409) when it
        moved the booking; still running at the end of the wait: the record, `queued` with
        `stop_requested` (the caller answers 202).
        """
        record = self.get_stored(source, reschedule_id)
        if record.get("status") != QUEUED:
            raise not_queued(record.get("status"))
        cancelled = self._cancelled(source, reschedule_id, record)
        try:
            item_id = str(cancelled.get("idempotency_record", ""))
            self._ledger.cancel(cancelled, item_id=item_id, now=int(utc_now().timestamp()))
        except LedgerUnavailable:
            raise unavailable(
                "The relay's storage is unavailable; try again shortly.", "storage_unavailable", 2
            ) from None
        except LockNotHeld:  # it stopped being queued since it was read
            return self._final(reschedule_id, self.get_stored(source, reschedule_id))
        except Stopping:
            logger.info("cancel noted while a provider call is under way", extra=summary(cancelled))
            return self._settle(source, reschedule_id, deadline)
        logger.info("reschedule cancelled", extra=summary(cancelled))
        return public_view(dict(cancelled))

    def _cancelled(self, source: str, reschedule_id: str, record: dict[str, Any]) -> AttemptRecord:
        return ended_record(
            record | {"reschedule_id": reschedule_id, "source": source},
            Cancelled(),
            retention_days=self._settings.record_retention_days,
        )

    def _settle(self, source: str, reschedule_id: str, deadline: Deadline | None) -> dict[str, Any]:
        """Wait (bounded) for the call under way to end, and answer with what it left."""
        wait = CANCEL_SETTLE_SECONDS
        if deadline is not None:
            wait = min(wait, deadline.remaining() - CANCEL_ANSWER_MARGIN_SECONDS)
        ends = time.monotonic() + wait
        record = self.get_stored(source, reschedule_id)
        while record.get("status") not in _FINAL and time.monotonic() < ends:
            self._sleep(CANCEL_SETTLE_POLL_SECONDS)
            record = self.get_stored(source, reschedule_id)
        if record.get("status") in _FINAL:
            return self._final(reschedule_id, record)
        return public_view(record)

    @staticmethod
    def _final(reschedule_id: str, record: dict[str, Any]) -> dict[str, Any]:
        """The answer once the record is over: cancelled (200), or why the cancel did not take."""
        status = record.get("status")
        if status == "cancelled":
            return public_view(record)
        if status == "succeeded":
            raise cancel_too_late(reschedule_id)
        raise not_queued(status)


def _looks_like_id(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False
