"""Outages are probed, not hammered: the circuit per provider account, as the queue door uses it.

While an account's provider keeps failing (5xx, timeouts, refused connections; never a 4xx
refusal, which is the provider answering), its circuit is open: the account's queued backlog waits
behind one probe at a time, one provider call every `CIRCUIT_PROBE_INTERVAL_SECONDS`, instead of
every message sending its own tries. A probe the provider answers closes it, and the backlog drains
at the account's pace. The state is shared through the `Circuits` port (relay/dal/circuits.py).

The HTTP door does not consult it (docs/delivery.md says why): only queued deliveries do.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from relay.errors import RelayError
from relay.ports import circuit_key

if TYPE_CHECKING:
    from relay.ports import Circuits, CircuitView

# The provider failures that count: it did not answer, or answered that it is failing (5xx).
COUNTED_CODES = frozenset({"provider_unavailable", "provider_timeout", "provider_unreachable"})
# A message waiting behind a probe looks again this soon (the probe's answer is usually quick).
PROBE_RECHECK_SECONDS = 2
# Held messages wake spread over this much, so a backlog does not race for each lease at once.
HOLD_JITTER_SECONDS = 1.0
# A probe's lease outlasts its one call (connect + read timeouts) by this margin.
PROBE_LEASE_MARGIN_SECONDS = 2
# What a probe may send: one try, whatever the client would otherwise retry.
PROBE_TRIES = 1


def counts(error: RelayError) -> bool:
    """Whether a failed attempt says the provider is down (not that it refused this request)."""
    if error.code in COUNTED_CODES:
        return True
    provider_status = getattr(error, "provider_status", None)
    return error.code == "provider_error" and provider_status is not None and provider_status >= 500


class Turn(Enum):
    CLOSED = "closed"  # call as usual
    PROBE = "probe"  # this delivery probes the open circuit: one try
    HELD = "held"  # wait: another delivery probes, or the next probe is not due


@dataclass(frozen=True)
class Admission:
    turn: Turn
    key: str
    token: str = ""
    # CLOSED: an item exists (failures were counted): a success deletes it.
    known: bool = False
    # HELD: seconds until this delivery should look again.
    wait_seconds: int = 0


class Breaker:
    def __init__(
        self,
        circuits: Circuits,
        *,
        probe_interval_seconds: int,
        probe_lease_seconds: int,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self._circuits = circuits
        self._interval = probe_interval_seconds
        self._lease = probe_lease_seconds
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - spreading wake-ups, not secrecy

    def admit(self, provider: str, account: str, token: str) -> Admission:
        """May this delivery call the account's provider now? One read when closed (the usual case)."""
        key = circuit_key(provider, account)
        view = self._circuits.read(key)
        if view is None or not view.open:
            return Admission(Turn.CLOSED, key, known=view is not None)
        now = int(self._clock())
        if view.next_probe_at <= now and view.probe_until < now:
            found = self._circuits.take_probe(key, token, now=now, until=now + self._lease)
            if found is None:
                return Admission(Turn.PROBE, key, token=token)
            if not found.open:  # closed between the read and the lease
                return Admission(Turn.CLOSED, key)
            view = found
        return Admission(Turn.HELD, key, wait_seconds=self._hold(view, now))

    def settled(self, admission: Admission, error: RelayError | None, *, called: bool) -> None:
        """The attempt's outcome: the provider answered (closes), failed (trips), or was not called."""
        if not called:
            if admission.turn is Turn.PROBE:
                self._circuits.release_probe(admission.key, admission.token)
            return
        if error is not None and counts(error):
            now = int(self._clock())
            self._circuits.trip(admission.key, now=now, next_probe_at=now + self._interval)
        elif admission.turn is Turn.PROBE or admission.known:
            self._circuits.close(admission.key)

    def reopen_wait(self) -> int:
        """How long a delivery whose attempt tripped the circuit waits: until the next probe is due."""
        return self._interval + 1

    def _hold(self, view: CircuitView, now: int) -> int:
        if view.probe_until >= now:  # a probe is under way: its answer may close the circuit soon
            due = min(view.probe_until - now + 1, PROBE_RECHECK_SECONDS)
        else:
            due = max(1, view.next_probe_at - now)
        return max(1, round(due + self._rng.uniform(0, HOLD_JITTER_SECONDS)))
