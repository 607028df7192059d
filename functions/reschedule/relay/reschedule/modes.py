"""How a request is delivered: sync (inside the request), async (by the queue) or auto (sync, queued
when the provider cannot take it now). The door chooses; the use case carries it out.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from relay.errors import RelayError

# RFC 7240: a client that prefers an early 202 to waiting for the result.
PREFER_ASYNC = "respond-async"


class Mode(StrEnum):
    SYNC = "sync"
    ASYNC = "async"
    AUTO = "auto"


# Each source kind's mode when its registry entry names none: forms are people who should not see a
# provider's outage; API keys and signed senders are programs that expect the result in the answer.
DEFAULT_MODE_BY_KIND: Mapping[str, Mode] = {
    "api_key": Mode.SYNC,
    "standard_webhooks": Mode.SYNC,
    "signed_link": Mode.AUTO,
    # Form tools' own webhooks (docs/forms.md): they wait seconds at most and retry on their own.
    "typeform": Mode.AUTO,
    "tally": Mode.AUTO,
    "webflow": Mode.AUTO,
    "jotform": Mode.AUTO,
    "fillout": Mode.AUTO,
}

# Outcomes that a later attempt may well turn into a success: auto mode queues these instead of failing.
# `paced` / `pacing_unavailable`: the account's pacing bucket had no slot, or could not be read.
QUEUEABLE_CODES = frozenset(
    {
        "provider_unavailable",
        "provider_rate_limited",
        "provider_timeout",
        "provider_unreachable",
        "paced",
        "pacing_unavailable",
    }
)
# Not a failed attempt: the call never went out. The worker defers the message, counting nothing.
DEFERRED_CODES = frozenset({"paced", "pacing_unavailable"})


def prefers_async(prefer_header: str | None) -> bool:
    """`Prefer: respond-async` (RFC 7240: comma-separated preferences, each maybe with parameters)."""
    if not prefer_header:
        return False
    return any(part.split(";", 1)[0].strip().lower() == PREFER_ASYNC for part in prefer_header.split(","))


def choose(
    *, prefer_header: str | None, source_delivery: str | None, source_kind: str, queue_available: bool
) -> Mode:
    """The request's mode: the caller's Prefer header, else its source's setting, else its kind's default.

    Without a delivery queue (not configured) every request is sync.
    """
    if not queue_available:
        return Mode.SYNC
    if prefers_async(prefer_header):
        return Mode.ASYNC
    if source_delivery is not None:
        return Mode(source_delivery)
    return DEFAULT_MODE_BY_KIND.get(source_kind, Mode.SYNC)


def queueable(error: RelayError) -> bool:
    """A provider outcome that auto mode queues rather than answers."""
    return error.code in QUEUEABLE_CODES
