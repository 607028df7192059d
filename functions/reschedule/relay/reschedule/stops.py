"""Why a queued move ends without being delivered, other than a provider's answer: its source
cancelled it, the source was revoked or lost the account (re-authorised at delivery), or its new
start came within `DELIVERY_MIN_LEAD_SECONDS` (the slot is too near to move to).

Shared by the queued delivery, the queries (cancel) and the HTTP door's intake check.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from relay.errors import RelayError, invalid_field
from relay.reschedule.attempts import AttemptRecord, Cancelled, Delivery, Failed, Outcome, attempt_record
from relay.times import stored_instant, utc_now

if TYPE_CHECKING:
    from relay.command import RescheduleCommand
    from relay.settings import Settings

CANCELLED_BY_SOURCE = "cancelled_by_source"
SOURCE_REVOKED = "source_revoked"
ACCOUNT_NOT_ALLOWED = "account_not_allowed"
START_PASSED = "start_passed"
# The guard refused a provider call: the record was cancelled, or a stop was asked for.
DELIVERY_STOPPED = "delivery_stopped"
INSIDE_LEAD = "inside_lead"
# What a record ended without the worker keeps of the queued one (the command is only in the queue).
_KEPT_WHEN_ENDED = ("provider", "account", "booking_id", "booking_key", "start", "end", "timezone")


def last_moment(command: RescheduleCommand, settings: Settings) -> datetime:
    """The latest instant a queued move of `command` may still be sent."""
    return command.start - timedelta(seconds=settings.delivery_min_lead_seconds)


def start_passed(settings: Settings) -> RelayError:
    return RelayError(
        detail=(
            f"Not delivered by {settings.delivery_min_lead_seconds} seconds before the new start; "
            "the slot is too near to move the booking to."
        ),
        status=422,
        code=START_PASSED,
        title="Too late to deliver",
    )


def inside_lead(settings: Settings) -> RelayError:
    """The intake refusal of an async or auto request whose start is already too near to queue."""
    return invalid_field(
        "start",
        f"The new start is less than {settings.delivery_min_lead_seconds} seconds away: a queued move "
        "could not be delivered in time. Send it for synchronous delivery, or choose a later time.",
        INSIDE_LEAD,
    )


def not_authorised(reason: str) -> RelayError:
    """A queued move whose source no longer may make it (re-authorised at delivery)."""
    if reason == SOURCE_REVOKED:
        return RelayError(
            detail="The source was revoked after this move was queued; it was not delivered.",
            status=403,
            code="source_revoked",
            title="No longer authorised",
        )
    return RelayError(
        detail="The source may no longer use this provider account; the queued move was not delivered.",
        status=403,
        code="account_not_allowed",
        title="No longer authorised",
    )


def stopped() -> RelayError:
    return RelayError(
        detail="The queued request was cancelled or stopped before this provider call.",
        status=409,
        code=DELIVERY_STOPPED,
        title="Stopped",
    )


def stop_outcome(reason: str) -> Outcome:
    """What a stop asked for by `reason` ends the record as."""
    return Cancelled() if reason == CANCELLED_BY_SOURCE else Failed(not_authorised(reason))


def ended_record(stored: dict[str, Any], outcome: Outcome, *, retention_days: int) -> AttemptRecord:
    """A stored queued record, ended by its source's cancel or a revocation (not by the worker)."""
    now = utc_now()
    delivery = Delivery(
        mode=stored.get("delivery", "async"),
        queued_at=stored_instant(stored.get("queued_at")) or now,
        idempotency_record=str(stored.get("idempotency_record", "")),
        attempts=int(stored.get("attempts") or 0),
        last_error=stored.get("last_error"),
        last_error_detail=stored.get("last_error_detail"),
        finished_at=now,
    )
    ended = attempt_record(
        reschedule_id=str(stored["reschedule_id"]),
        source=str(stored["source"]),
        attempted_at=stored_instant(stored.get("attempted_at")) or now,
        retention_days=retention_days,
        outcome=outcome,
        delivery=delivery,
    )
    for field in _KEPT_WHEN_ENDED:
        if field in stored:
            ended[field] = stored[field]  # type: ignore[literal-required]
    return ended
