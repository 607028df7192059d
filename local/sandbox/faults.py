"""Fault switches: make the next N provider-API calls fail in a chosen way.

A fault is set with `POST /_sandbox/faults` and replaces any fault still pending, so a test that
forgot to clear one cannot leak it into the next scenario beyond its own `times`.
`{"drop_connection": true, "after_commit": true}` applies the call first and then hangs up without
answering: the caller cannot tell whether the booking moved (the unknown outcome made real).
`{"commit_delay_ms": N}` commits the call only after N ms; meanwhile a move of the same booking
races it and gets the provider's conflict answer where it has one (Cal.com: raw 409
`booking_conflict_error`). With a client timeout under N, the caller sees a timeout, then a race.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any

from local.sandbox.api import is_int

# Bounds on what a fault may ask for, so a typo cannot hang a test run for hours.
MAX_FAULT_TIMES = 1000
MAX_FAULT_DELAY_MS = 60_000
MAX_FAULT_RETRY_AFTER_SECONDS = 3600
FAULT_STATUS_RANGE = range(400, 600)

_FAULT_KEYS = frozenset(
    {"status", "times", "retry_after", "delay_ms", "drop_connection", "after_commit", "commit_delay_ms"}
)


class FaultSpecError(ValueError):
    """The fault JSON does not describe a valid fault."""


@dataclass(frozen=True)
class Fault:
    status: int | None = None
    times: int = 1
    retry_after: int | None = None
    delay_ms: int = 0
    drop_connection: bool = False
    after_commit: bool = False  # with drop_connection: apply the call, then hang up
    commit_delay_ms: int = 0  # apply the call this late; a racing move of the booking meets a conflict

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _int_in(spec: dict[str, Any], key: str, bounds: range, default: int) -> int:
    value = spec.get(key, default)
    if not is_int(value) or value not in bounds:
        raise FaultSpecError(f"{key} must be an integer in [{bounds.start}, {bounds.stop - 1}]")
    return int(value)


def _optional_int_in(spec: dict[str, Any], key: str, bounds: range) -> int | None:
    return None if spec.get(key) is None else _int_in(spec, key, bounds, default=0)


def parse_fault(spec: object) -> Fault:
    """Validate the body of `POST /_sandbox/faults`; every key is optional."""
    if not isinstance(spec, dict):
        raise FaultSpecError("fault must be a JSON object")
    unknown = sorted(set(spec) - _FAULT_KEYS)
    if unknown:
        raise FaultSpecError(f"unknown fault keys: {', '.join(unknown)}")
    drop_connection = spec.get("drop_connection", False)
    if not isinstance(drop_connection, bool):
        raise FaultSpecError("drop_connection must be a boolean")
    after_commit = spec.get("after_commit", False)
    if not isinstance(after_commit, bool):
        raise FaultSpecError("after_commit must be a boolean")
    if after_commit and not drop_connection:
        raise FaultSpecError("after_commit needs drop_connection: true (it says when to hang up)")
    if after_commit and spec.get("status") is not None:
        raise FaultSpecError("after_commit answers nothing, so it takes no status")
    commit_delay_ms = _int_in(spec, "commit_delay_ms", range(MAX_FAULT_DELAY_MS + 1), default=0)
    if commit_delay_ms and (spec.get("status") is not None or (drop_connection and not after_commit)):
        raise FaultSpecError("commit_delay_ms commits the call, so it takes no status and no plain drop")
    return Fault(
        commit_delay_ms=commit_delay_ms,
        status=_optional_int_in(spec, "status", FAULT_STATUS_RANGE),
        times=_int_in(spec, "times", range(1, MAX_FAULT_TIMES + 1), default=1),
        retry_after=_optional_int_in(spec, "retry_after", range(MAX_FAULT_RETRY_AFTER_SECONDS + 1)),
        delay_ms=_int_in(spec, "delay_ms", range(MAX_FAULT_DELAY_MS + 1), default=0),
        drop_connection=drop_connection,
        after_commit=after_commit,
    )


class FaultSwitch:
    """The pending fault and how many calls it still applies to (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fault: Fault | None = None
        self._remaining = 0

    def arm(self, fault: Fault) -> None:
        with self._lock:
            self._fault = fault
            self._remaining = fault.times

    def clear(self) -> None:
        with self._lock:
            self._fault = None
            self._remaining = 0

    def take(self) -> Fault | None:
        """The fault for the call now arriving, counting it down; None when no fault is pending."""
        with self._lock:
            if self._fault is None:
                return None
            fault = self._fault
            self._remaining -= 1
            if self._remaining <= 0:
                self._fault = None
            return fault

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {"fault": self._fault.to_json() if self._fault else None, "remaining": self._remaining}
