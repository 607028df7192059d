"""Pacing: before each provider call a token is taken from the account's bucket (relay.dal.pacing),
so no account ever gets more than its rate in any rolling 60 s window, across all containers.

The rate is the adapter's `delivery_rate_per_minute` unless the account's secret says
`rate_per_minute` (0: unpaced). A caller waits for a slot at most its door's bound; past it the
call is refused with the wait the bucket implies (`paced`, 429, Retry-After).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from relay.errors import RelayError

# Slots are this fraction further apart than the rate: network jitter between the relay and the
# provider must not land rate + 1 calls in the provider's own 60 s window.
PACE_SAFETY_FRACTION = 0.05
PACED_CODE = "paced"
MS_PER_MINUTE = 60_000


class TakeOutcome(Protocol):
    """When the caller may call (None: refused), the bucket's next free time, and the calls it cost."""

    @property
    def slot_ms(self) -> int | None: ...
    @property
    def next_free_ms(self) -> int: ...
    @property
    def calls(self) -> int: ...


class Bucket(Protocol):
    def take(self, key: str, *, interval_ms: int, now_ms: int, horizon_ms: int) -> TakeOutcome: ...

    def hold(self, key: str, *, until_ms: int) -> None:
        """No slot before `until_ms`: the provider refused the account until then (its 429)."""
        ...


@dataclass(frozen=True)
class Pacing:
    """One provider account's pacing for one call: its bucket key, rate and the longest wait allowed."""

    key: str
    rate_per_minute: int
    max_wait_seconds: float

    @property
    def interval_ms(self) -> int:
        return math.ceil(MS_PER_MINUTE / self.rate_per_minute * (1 + PACE_SAFETY_FRACTION))


def paced(provider: str, wait_seconds: float) -> RelayError:
    seconds = max(1, math.ceil(wait_seconds))
    return RelayError(
        detail=f"The {provider} account's delivery rate is used up; try again in {seconds} s.",
        status=429,
        code=PACED_CODE,
        title="Paced",
        retry_after=seconds,
    )
