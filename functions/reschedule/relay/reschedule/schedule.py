"""What the delivery queue carries (one `DeliveryOrder` per accepted request) and when it is tried next."""

from __future__ import annotations

import math
import random
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from relay.command import RescheduleCommand

ORDER_VERSION: Literal[1] = 1
# The retry schedule as multiples of the base delay (5 s: 5 s, 15 s, 1 min, 5 min, 15 min, 1 h), then hourly.
SCHEDULE_MULTIPLES = (1, 3, 12, 60, 180, 720)
# Each wait is spread by this fraction either way, so a backlog does not retry in lockstep.
JITTER_FRACTION = 0.2
# The idempotency item of a queued request outlives its maximum age by this much (the last attempt's
# own time included), so a repeat never finds the key free while the request may still be delivered.
QUEUED_KEY_MARGIN_SECONDS = 3600


class DeliveryOrder(BaseModel):
    """One queued reschedule: which record it fulfils, for whom, and the command to run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = ORDER_VERSION
    reschedule_id: str
    source: str
    mode: Literal["async", "auto"]
    idempotency_record: str
    queued_at: datetime
    command: RescheduleCommand


def retry_wait(
    attempts: int, base_delay_seconds: int, *, at_least: int | None = None, rng: random.Random | None = None
) -> int:
    """Seconds to wait after `attempts` failed provider calls: the schedule, jittered, never sooner
    than the provider's Retry-After."""
    step = SCHEDULE_MULTIPLES[min(max(attempts, 1), len(SCHEDULE_MULTIPLES)) - 1]
    # Spreading retries, not secrecy: any generator will do.
    jitter = (rng or random).uniform(1 - JITTER_FRACTION, 1 + JITTER_FRACTION)
    wait = math.ceil(step * base_delay_seconds * jitter)
    return max(1, wait, at_least or 0)
