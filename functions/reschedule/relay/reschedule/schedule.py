"""What the delivery queue carries (one `DeliveryOrder` per accepted request) and when it is tried next."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

from relay.command import RescheduleCommand
from relay.ports import MAX_DELAY_SECONDS, MAX_VISIBILITY_TIMEOUT_SECONDS

if TYPE_CHECKING:
    from relay.ports import Queue as DeliveryQueue

ORDER_VERSION: Literal[1] = 1
# The retry schedule as multiples of the base delay (5 s: 5 s, 15 s, 1 min, 5 min, 15 min, 1 h), then hourly.
SCHEDULE_MULTIPLES = (1, 3, 12, 60, 180, 720)
# Each wait is spread by this fraction either way, so a backlog does not retry in lockstep.
JITTER_FRACTION = 0.2
# The idempotency item of a queued request outlives its maximum age by this much (the last attempt's
# own time included), so a repeat never finds the key free while the request may still be delivered.
QUEUED_KEY_MARGIN_SECONDS = 3600
# The queue's redrive is at 50 receives (template.yaml); past this many a wait re-sends a fresh copy
# (receive count 1) instead of re-timing this one, so a long schedule never reaches the DLQ by count.
RESEND_AFTER_RECEIVES = 40


class Disposition(Enum):
    FINISHED = "finished"  # delete the message
    WAITING = "waiting"  # leave it: its visibility timeout is its next attempt


@dataclass(frozen=True)
class ReceivedMessage:
    body: str
    receipt_handle: str
    receive_count: int


def show_again(queue: DeliveryQueue, message: ReceivedMessage, body: str, seconds: int) -> Disposition:
    """Show a message again in `seconds`: re-timed in place, or as a fresh delayed copy of `body`."""
    seconds = max(1, int(seconds))
    if message.receive_count < RESEND_AFTER_RECEIVES and seconds <= MAX_VISIBILITY_TIMEOUT_SECONDS:
        queue.change_visibility(message.receipt_handle, seconds)
        return Disposition.WAITING
    # A fresh copy; one sent early (SQS caps delays at 15 min) is re-timed when it comes back.
    queue.send(body, delay_seconds=min(seconds, MAX_DELAY_SECONDS))
    return Disposition.FINISHED


class DeliveryOrder(BaseModel):
    """One queued reschedule: which record it fulfils, for whom, and the command to run."""

    # Built at first use: only a queued request or the worker needs it, never a sync cold start.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    v: Literal[1] = ORDER_VERSION
    reschedule_id: str
    source: str
    mode: Literal["async", "auto"]
    idempotency_record: str
    queued_at: datetime
    # Without its personal fields (reason, notes, who, answers): the ledger holds those (`personal`).
    command: RescheduleCommand
    personal: bool = False
    # The source has an outcome callback: the final outcome is queued for it (relay.reschedule.callbacks).
    notify: bool = False


def retry_wait(
    attempts: int, base_delay_seconds: int, *, at_least: int | None = None, rng: random.Random | None = None
) -> int:
    """Seconds to wait after `attempts` failed provider calls: the schedule, jittered, never sooner
    than the provider's Retry-After."""
    step = SCHEDULE_MULTIPLES[min(max(attempts, 1), len(SCHEDULE_MULTIPLES)) - 1]
    return max(1, math.ceil(jittered(step * base_delay_seconds, JITTER_FRACTION, rng)), at_least or 0)


def jittered(seconds: float, fraction: float, rng: random.Random | None = None) -> float:
    """`seconds` spread by `fraction` either way, so a backlog does not retry in lockstep."""
    # Spreading retries, not secrecy: any generator will do.
    return seconds * (rng or random).uniform(1 - fraction, 1 + fraction)


def ceil_seconds(delta: timedelta) -> int:
    """A wait in whole seconds, rounded up (at least 1) but for the last millisecond (clock noise)."""
    return max(1, int(delta.total_seconds() + 0.999))
