"""Per-key rate limits: beyond N calls a minute, a key gets the provider's own 429.

`POST /_sandbox/limits {"token": "<bearer token or user id>", "per_minute": N}` limits one key;
without `token` the limit applies to every key (each key counted on its own). `GET` reports the
limits and `rejected` (429s answered since the last `DELETE`); `DELETE` clears limits and counts.

Two styles, as the providers count:
- rolling (default): N calls in any rolling 60 s; only admitted calls fill the window, so a client
  that keeps to N a minute is never refused.
- fixed window with a block (Cal.com's throttler, `block_seconds`): a fixed 60 s window that starts
  with a key's first call; every call counts, rejected ones included; the call over N blocks the key
  for `block_seconds`, during which every call is refused.
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
_LIMIT_KEYS = frozenset({"token", "per_minute", "block_seconds"})
# A shorter block than the provider's own, for tests that must not wait a minute.
MAX_BLOCK_SECONDS = 3600


class LimitSpecError(ValueError):
    """The limit JSON does not describe a valid limit."""


@dataclass(frozen=True)
class Limit:
    token: str | None  # None: every key
    per_minute: int
    # Fixed-window style only: how long a key over its limit is blocked (None: the provider's own).
    block_seconds: int | None = None


@dataclass(frozen=True)
class Refusal:
    """A call over its key's limit: the limit, and when its window next has room."""

    per_minute: int
    retry_after: int  # whole seconds, at least 1
    reset_at: int  # Unix seconds


@dataclass(frozen=True)
class Admission:
    """A call within its key's limit, with what a provider's rate-limit headers report."""

    per_minute: int
    remaining: int
    reset_in: int  # whole seconds until the window ends


@dataclass
class _FixedWindow:
    started: float
    count: int = 0
    blocked_until: float = 0.0


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
    block_seconds = spec.get("block_seconds")
    if block_seconds is not None and (
        not is_int(block_seconds) or not 1 <= block_seconds <= MAX_BLOCK_SECONDS
    ):
        raise LimitSpecError(f"block_seconds must be an integer in [1, {MAX_BLOCK_SECONDS}]")
    return Limit(token=token, per_minute=per_minute, block_seconds=block_seconds)


class RateLimiter:
    """Rolling-window counters per key (thread-safe)."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, *, block_seconds: int | None = None
    ) -> None:
        self._clock = clock  # seconds, monotonic; a test may pass its own
        # None: rolling window. Else: fixed window, rejected calls counted, over-limit blocks this long.
        self._block_seconds = block_seconds
        self._provider_block_seconds = block_seconds  # what `clear` goes back to
        self._fixed: dict[str, _FixedWindow] = {}
        self._lock = threading.Lock()
        self._per_key: dict[str, int] = {}
        self._every_key: int | None = None
        self._admitted: dict[str, deque[float]] = {}  # monotonic times of admitted calls, per key
        self._rejected = 0

    def set(self, limit: Limit) -> None:
        with self._lock:
            if limit.block_seconds is not None and self._block_seconds is not None:
                self._block_seconds = limit.block_seconds
            if limit.token is None:
                self._every_key = limit.per_minute
            else:
                self._per_key[limit.token] = limit.per_minute

    def clear(self) -> None:
        with self._lock:
            self._per_key.clear()
            self._every_key = None
            self._admitted.clear()
            self._fixed.clear()
            self._block_seconds = self._provider_block_seconds
            self._rejected = 0

    def admit(self, key: str) -> Refusal | Admission | None:
        """Count a call for `key`: a Refusal when it is over the limit, None when no limit applies."""
        with self._lock:
            per_minute = self._per_key.get(key, self._every_key)
            if per_minute is None:
                return None
            if self._block_seconds is not None:
                return self._admit_fixed(key, per_minute, self._block_seconds)
            now = self._clock()
            window = self._admitted.setdefault(key, deque())
            while window and window[0] <= now - RATE_WINDOW_SECONDS:
                window.popleft()
            if len(window) < per_minute:
                window.append(now)
                reset = window[0] + RATE_WINDOW_SECONDS - now
                return Admission(per_minute, per_minute - len(window), max(0, math.ceil(reset)))
            self._rejected += 1
            wait = window[0] + RATE_WINDOW_SECONDS - now
            return Refusal(
                per_minute=per_minute,
                retry_after=max(1, math.ceil(wait)),
                reset_at=math.ceil(time.time() + wait),
            )

    def _admit_fixed(self, key: str, per_minute: int, block_seconds: int) -> Refusal | Admission:
        now = self._clock()
        window = self._fixed.get(key)
        if window is None or (now >= window.started + RATE_WINDOW_SECONDS and now >= window.blocked_until):
            window = self._fixed[key] = _FixedWindow(started=now)
        window.count += 1  # every call counts, a refused one too
        if now < window.blocked_until or window.count > per_minute:
            if now >= window.blocked_until:
                window.blocked_until = now + block_seconds
            self._rejected += 1
            wait = window.blocked_until - now
            return Refusal(
                per_minute=per_minute,
                retry_after=max(1, math.ceil(wait)),
                reset_at=math.ceil(time.time() + wait),
            )
        reset = window.started + RATE_WINDOW_SECONDS - now
        return Admission(per_minute, per_minute - window.count, max(0, math.ceil(reset)))

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {
                "rejected": self._rejected,
                "per_key": dict(self._per_key),
                "every_key": self._every_key,
                "style": "rolling" if self._block_seconds is None else "fixed_window",
                "block_seconds": self._block_seconds,
            }
