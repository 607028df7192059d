"""Outage switch: every provider-API call fails with one status for a while, as a provider that is down.

`POST /_sandbox/outage {"seconds": S, "status": 503}` starts it (replacing a running one),
`DELETE /_sandbox/outage` ends it early, `GET /_sandbox/outage` says whether it is on. Unlike a fault
it counts time, not calls, so a retrying client sees the provider come back on its own.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

from local.sandbox.api import is_int
from local.sandbox.faults import FAULT_STATUS_RANGE, MAX_FAULT_RETRY_AFTER_SECONDS

# A day: long enough for any test or demo, short enough that a typo does not leave a stack broken.
MAX_OUTAGE_SECONDS = 86_400
DEFAULT_OUTAGE_STATUS = 503

_RETRY_AFTER_RANGE = range(MAX_FAULT_RETRY_AFTER_SECONDS + 1)
_OUTAGE_KEYS = frozenset({"seconds", "status", "retry_after"})


class OutageSpecError(ValueError):
    """The outage JSON does not describe a valid outage."""


@dataclass(frozen=True)
class Outage:
    seconds: float
    status: int = DEFAULT_OUTAGE_STATUS
    retry_after: int | None = None  # Retry-After on every failed answer; None sends none


def parse_outage(spec: object) -> Outage:
    """Validate the body of `POST /_sandbox/outage`; `seconds` is required."""
    if not isinstance(spec, dict):
        raise OutageSpecError("outage must be a JSON object")
    unknown = sorted(set(spec) - _OUTAGE_KEYS)
    if unknown:
        raise OutageSpecError(f"unknown outage keys: {', '.join(unknown)}")
    seconds = spec.get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise OutageSpecError("seconds must be a number")
    if not 0 < seconds <= MAX_OUTAGE_SECONDS:
        raise OutageSpecError(f"seconds must be in (0, {MAX_OUTAGE_SECONDS}]")
    status = spec.get("status", DEFAULT_OUTAGE_STATUS)
    if not is_int(status) or status not in FAULT_STATUS_RANGE:
        bounds = f"[{FAULT_STATUS_RANGE.start}, {FAULT_STATUS_RANGE.stop - 1}]"
        raise OutageSpecError(f"status must be an integer in {bounds}")
    retry_after = spec.get("retry_after")
    if retry_after is not None and (not is_int(retry_after) or retry_after not in _RETRY_AFTER_RANGE):
        raise OutageSpecError(f"retry_after must be an integer in [0, {MAX_FAULT_RETRY_AFTER_SECONDS}]")
    return Outage(seconds=float(seconds), status=int(status), retry_after=retry_after)


class OutageSwitch:
    """The running outage, if any, and how many calls it has failed (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._outage: Outage | None = None
        self._until = 0.0  # time.monotonic() at which the outage ends
        self._failed = 0

    def start(self, outage: Outage) -> None:
        with self._lock:
            self._outage = outage
            self._until = time.monotonic() + outage.seconds
            self._failed = 0

    def end(self) -> None:
        with self._lock:
            self._outage = None

    def _current(self) -> Outage | None:
        if self._outage is not None and time.monotonic() >= self._until:
            self._outage = None
        return self._outage

    def take(self) -> Outage | None:
        """The outage the call now arriving falls in, counting it; None when the provider is up."""
        with self._lock:
            outage = self._current()
            if outage is not None:
                self._failed += 1
            return outage

    def describe(self) -> dict[str, Any]:
        with self._lock:
            outage = self._current()
            remaining = max(0.0, self._until - time.monotonic()) if outage else 0.0
            return {
                "active": outage is not None,
                "status": outage.status if outage else None,
                "retry_after": outage.retry_after if outage else None,
                "remaining_seconds": math.ceil(remaining * 1000) / 1000,
                "failed": self._failed,
            }
