"""The time a request may still spend: the relay must answer before API Gateway gives up (30 s)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

# API Gateway HTTP APIs answer 503 at 30 s whatever the function does; stay clear of it.
API_GATEWAY_LIMIT_SECONDS = 29.0


class HasRemainingTime(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


@dataclass(frozen=True)
class Deadline:
    at: float  # time.monotonic() value
    # When the invocation itself is stopped (time.monotonic()), if it runs in one; None in tests.
    ends_at: float | None = None

    @classmethod
    def within(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    @classmethod
    def for_invocation(cls, context: HasRemainingTime | None, safety_margin_seconds: float) -> Deadline:
        """The invocation's remaining time less a margin for writing the outcome and answering."""
        now = time.monotonic()
        budget = API_GATEWAY_LIMIT_SECONDS
        ends_at = None
        if context is not None:
            remaining = context.get_remaining_time_in_millis() / 1000
            budget = min(budget, remaining)
            ends_at = now + remaining
        return cls(now + max(0.0, budget - safety_margin_seconds), ends_at)

    @classmethod
    def for_worker(cls, context: HasRemainingTime, safety_margin_seconds: float) -> Deadline:
        """A queue worker's own invocation, whatever its Timeout: no API Gateway in front of it."""
        now = time.monotonic()
        remaining = context.get_remaining_time_in_millis() / 1000
        return cls(now + max(0.0, remaining - safety_margin_seconds), now + remaining)

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def invocation_remaining(self) -> float | None:
        """Seconds until the invocation is stopped (what an in-progress lock must outlive), if known."""
        return None if self.ends_at is None else max(0.0, self.ends_at - time.monotonic())
