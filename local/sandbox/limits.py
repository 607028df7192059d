"""Per-key rate limits: beyond N calls in any rolling 60 s, a key gets the provider's own 429.

`POST /_sandbox/limits {"token": "<bearer token or user id>", "per_minute": N}` limits one key;
without `token` the limit applies to every key (each key counted on its own). `GET` reports the
limits and `rejected` (429s answered since the last `DELETE`); `DELETE` clears limits and counts.
Only admitted calls fill the window, so a client that keeps to N a minute is never refused.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from local.sandbox.api import is_int

RATE_WINDOW_SECONDS = 60
# Far above any real provider's limit; bounds the memory one key's window can take.
MAX_PER_MINUTE = 100_000
MAX_TOKEN_CHARS = 1024

_PER_MINUTE_RANGE = range(1, MAX_PER_MINUTE + 1)
_LIMIT_KEYS = frozenset({"token", "per_minute"})


class LimitSpecError(ValueError):
    """The limit JSON does not describe a valid limit."""


@dataclass(frozen=True)
class Limit:
    token: str | None  # None: every key
    per_minute: int


@dataclass(frozen=True)
class Refusal:
    """A call over its key's limit: the limit, and when its window next has room."""

    per_minute: int
    retry_after: int  # whole seconds, at least 1
    reset_at: int  # Unix seconds


def parse_limit(spec: object) -> Limit:
    if not isinstance(spec, dict):
        raise LimitSpecError("limit must be a JSON object")
    unknown = sorted(set(spec) - _LIMIT_KEYS)
    if unknown:
        raise LimitSpecError(f"unknown limit keys: {', '.join(unknown)}")
    token = spec.get("token")
    if token is not None and (not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_CHARS):
        raise LimitSpecError(f"token must be a non-empty string of at most {MAX_TOKEN_CHARS} characters")
    per_minute = spec.get("per_minute")
    if not is_int(per_minute) or per_minute not in _PER_MINUTE_RANGE:
        raise LimitSpecError(f"per_minute must be an integer in [1, {MAX_PER_MINUTE}]")
    return Limit(token=token, per_minute=per_minute)


class RateLimiter:
    """Rolling-window counters per key (thread-safe)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock  # seconds, monotonic; a test may pass its own
        self._lock = threading.Lock()
        self._per_key: dict[str, int] = {}
        self._every_key: int | None = None
        self._admitted: dict[str, deque[float]] = {}  # monotonic times of admitted calls, per key
        self._rejected = 0

    def set(self, limit: Limit) -> None:
        with self._lock:
            if limit.token is None:
                self._every_key = limit.per_minute
            else:
                self._per_key[limit.token] = limit.per_minute

    def clear(self) -> None:
        with self._lock:
            self._per_key.clear()
            self._every_key = None
            self._admitted.clear()
            self._rejected = 0

    def admit(self, key: str) -> Refusal | None:
        """Count a call for `key`; a Refusal when it is over the limit (the call is then not counted)."""
        with self._lock:
            per_minute = self._per_key.get(key, self._every_key)
            if per_minute is None:
                return None
            now = self._clock()
            window = self._admitted.setdefault(key, deque())
            while window and window[0] <= now - RATE_WINDOW_SECONDS:
                window.popleft()
            if len(window) < per_minute:
                window.append(now)
                return None
            self._rejected += 1
            wait = window[0] + RATE_WINDOW_SECONDS - now
            return Refusal(
                per_minute=per_minute,
                retry_after=max(1, math.ceil(wait)),
                reset_at=math.ceil(time.time() + wait),
            )

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {"rejected": self._rejected, "per_key": dict(self._per_key), "every_key": self._every_key}
