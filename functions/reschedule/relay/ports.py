"""The use cases' ports: what `relay.reschedule` needs from storage, secrets and the queue, as
Protocols, with the values and exceptions that cross them (the provider calls' port is in
relay/reschedule/step.py, beside the step that uses it).

The DynamoDB/SQS/Secrets Manager adapters in `relay.dal` and the in-memory fakes in tests/unit both
implement these (mypy checks both); `relay.composition` wires the real ones. The use cases never
import `relay.dal` (an import-linter contract).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol, TypedDict

from relay.errors import RelayError

# SQS's limit on a message's delay (DelaySeconds).
MAX_DELAY_SECONDS = 15 * 60
# SQS's 12 h visibility limit counts from the receive; the worker re-times a message within the
# invocation that received it, so 5 minutes less is always accepted.
SQS_MAX_VISIBILITY_SECONDS = 12 * 60 * 60
VISIBILITY_CAP_MARGIN_SECONDS = 5 * 60
MAX_VISIBILITY_TIMEOUT_SECONDS = SQS_MAX_VISIBILITY_SECONDS - VISIBILITY_CAP_MARGIN_SECONDS
RETRY_AFTER_UNAVAILABLE_SECONDS = 5


def booking_key(provider: str, booking_id: str) -> str:
    """The reschedules table's history key of one booking."""
    return f"{provider}#{booking_id}"


def pace_key(provider: str, account: str) -> str:
    """The pacing bucket of one provider account."""
    return f"pace#{provider}#{account}"


def circuit_key(provider: str, account: str) -> str:
    """The circuit of one provider account."""
    return f"circuit#{provider}#{account}"


# -- the ledger (relay.dal.ledger) ----------------------------------------------------------------


@dataclass(frozen=True)
class LedgerKey:
    """A request's key in the ledger: its item, what a repeat must match, and the booking it moves."""

    item_id: str
    payload_hash: str
    last_move_id: str
    # Keyed by content (no Idempotency-Key): a stored success stands only while it is the last move.
    content_keyed: bool


@dataclass(frozen=True)
class Claim:
    """The key is this request's: run it, then complete or release it."""

    key: LedgerKey
    # An earlier attempt under this key ended with its outcome unknown (a lost answer): the booking
    # is read before anything is sent again.
    settle_first: bool = False


@dataclass(frozen=True)
class Answered:
    """The key already has an answer (a success or a queued 202), as first given."""

    answer: dict[str, Any]


class KeyInProgress(Exception):
    """Another request with this key is running now."""


class KeyReused(Exception):
    """This key was used with a different request."""


class LedgerUnavailable(Exception):
    """DynamoDB did not take or answer the write (unreachable, throttled)."""


class LockNotHeld(Exception):
    """A delivery's condition failed: another delivery holds it, or the record moved on."""


class Stopping(Exception):
    """A stop (cancel, revocation) was asked for while a provider call is under way: the record stays
    queued with the stop noted; the delivery holding it ends it (`succeeded` if the call moved it)."""


class Ledger(Protocol):
    def key(
        self,
        scoped_key: str,
        payload: Any,
        *,
        source: str,
        provider: str,
        booking_id: str,
        content_keyed: bool,
    ) -> LedgerKey: ...
    def take(
        self, key: LedgerKey, *, now: float, lock_seconds: float, expires_at: int
    ) -> Claim | Answered: ...
    def accept_queued(
        self,
        key: LedgerKey,
        answer: Mapping[str, Any],
        record: Mapping[str, Any],
        *,
        now: float,
        expires_at: int,
        personal: Mapping[str, Any] | None = None,
    ) -> Claim | Answered | None: ...
    def personal(self, item_id: str) -> dict[str, Any] | None: ...
    def answered_by(self, item_id: str) -> str | None: ...
    def complete(
        self, claim: Claim, answer: Mapping[str, Any], record: Mapping[str, Any], *, expires_at: int
    ) -> None: ...
    def complete_queued(
        self,
        claim: Claim,
        answer: Mapping[str, Any],
        record: Mapping[str, Any],
        *,
        expires_at: int,
        personal: Mapping[str, Any] | None = None,
    ) -> None: ...
    def release(self, claim: Claim, record: Mapping[str, Any], *, unsettled: bool = False) -> None: ...
    def release_quietly(self, claim: Claim) -> None: ...
    def read_record(self, reschedule_id: str) -> dict[str, Any] | None: ...
    def lock_delivery(self, reschedule_id: str, token: str, *, now: int, until: int) -> None: ...
    def progress(self, record: Mapping[str, Any], token: str) -> None: ...
    def delivered(
        self,
        record: Mapping[str, Any],
        token: str,
        *,
        item_id: str,
        answer: Mapping[str, Any],
        expires_at: int,
    ) -> None: ...
    def undelivered(self, record: Mapping[str, Any], token: str, *, item_id: str) -> None: ...
    def cancel(self, record: Mapping[str, Any], *, item_id: str, now: int) -> None: ...
    def guard_send(self, reschedule_id: str, token: str) -> None: ...


# -- circuits per provider account (relay.dal.circuits) ---------------------------------------------


class CircuitUnavailable(Exception):
    """DynamoDB did not answer the circuit's item."""


@dataclass(frozen=True)
class CircuitView:
    """An account's circuit as stored (no item: closed, never failed)."""

    open: bool
    next_probe_at: int  # epoch seconds: when the next probe may start
    probe_until: int  # epoch seconds: when the running probe's lease ends (0: none)
    failures: int


class Circuits(Protocol):
    def read(self, key: str) -> CircuitView | None: ...
    def take_probe(self, key: str, token: str, *, now: int, until: int) -> CircuitView | None: ...
    def trip(self, key: str, *, now: int, next_probe_at: int) -> None: ...
    def close(self, key: str) -> None: ...
    def release_probe(self, key: str, token: str) -> None: ...


class BookingChain(Protocol):
    """Where a booking's id led (Cal.com gives a booking a new id per move): the chain items the
    ledger writes in each success's transaction (relay.dal.ledger.Ledger implements it)."""

    def latest_booking_id(self, provider: str, booking_id: str) -> str | None: ...


def chain_key(provider: str, booking_id: str) -> str:
    """The chain item of one booking id: the id its last recorded move created."""
    return f"chain#{provider}#{booking_id}"


# -- quotas per source (relay.dal.quotas) ------------------------------------------------------------

# The defaults of a source's quotas (docs/callers.md "Quotas"); the registry may set each per source.
DEFAULT_REQUESTS_PER_MINUTE = 120
DEFAULT_QUEUED_BACKLOG = 200
DEFAULT_MOVES_PER_BOOKING_PER_DAY = 5


@dataclass(frozen=True)
class SourceQuotas:
    """One source's quotas: new reschedule requests per minute, queued requests at once, and new
    moves of one booking per UTC day. A request is counted once per idempotency key: a replay
    (the same key again) never counts."""

    # None: no such quota for this source (e.g. a load-test source).
    requests_per_minute: int | None = DEFAULT_REQUESTS_PER_MINUTE
    queued_backlog: int | None = DEFAULT_QUEUED_BACKLOG
    moves_per_booking_per_day: int | None = DEFAULT_MOVES_PER_BOOKING_PER_DAY


class QuotaExceeded(Exception):
    """Over a quota: which one (`requests_per_minute`, `moves_per_booking_per_day`, `queued_backlog`),
    and the seconds until its window has room again."""

    def __init__(self, quota: str, retry_after: int) -> None:
        super().__init__(quota)
        self.quota = quota
        self.retry_after = retry_after


def backlog_key(source: str) -> str:
    """The item that holds a source's queued requests (a member per ledger key)."""
    return f"quota#backlog#{source}"


# A quota item holds one member per idempotency key: the last 16 hex digits of its hashed ledger id
# (64 bits: no collision among a window's keys), so an item stays small and a replay adds nothing.
QUOTA_MEMBER_DIGITS = 16


def quota_member(item_id: str) -> str:
    return item_id[-QUOTA_MEMBER_DIGITS:]


class Quotas(Protocol):
    def count(
        self,
        source: str,
        item_id: str,
        *,
        provider: str,
        booking_id: str,
        quotas: SourceQuotas,
        now: float,
        queued: bool = False,
    ) -> None: ...
    def enter_backlog(self, source: str, item_id: str, *, quotas: SourceQuotas, now: float) -> None: ...
    def leave_backlog(self, source: str, item_id: str) -> None: ...


# -- attempt records (relay.dal.records) ------------------------------------------------------------


class RecordWriteFailed(Exception):
    """The attempt could not be written; the caller decides what that means for the answer."""


class BadCursor(ValueError):
    """A history cursor this store did not hand out (or for another booking)."""


@dataclass(frozen=True)
class HistoryPage:
    items: list[dict[str, Any]]
    cursor: str | None  # opaque: where the next page starts, None when this is the last


class Records(Protocol):
    def put(self, record: Mapping[str, Any]) -> None: ...
    def get(self, reschedule_id: str) -> dict[str, Any] | None: ...
    def history_page(
        self, source: str, provider: str, booking_id: str, *, limit: int, cursor: str | None
    ) -> HistoryPage: ...


class RecentRecords(Protocol):
    """A source's newest attempts by status (relay.dal.records, its BySource index)."""

    def recent(self, source: str, statuses: tuple[str, ...], *, limit: int) -> list[dict[str, Any]]: ...


# -- secrets (relay.dal.secrets) -------------------------------------------------------------------


class Secrets(Protocol):
    def prefetch(self, name: str) -> None: ...
    def get_json(self, name: str, *, force_fetch: bool = False) -> dict[str, Any]: ...


# -- the delivery queue (relay.dal.queue) -----------------------------------------------------------


@dataclass(kw_only=True)
class QueueUnavailable(RelayError):
    """SQS did not take the call (unreachable, throttled, refused): retry later."""

    detail: str = "The delivery queue is unavailable; try again shortly."
    status: int = 503
    code: str = "queue_unavailable"
    title: str = "Dependency unavailable"
    retry_after: int | None = RETRY_AFTER_UNAVAILABLE_SECONDS
    # SQS's error code (e.g. "ReceiptHandleIsInvalid") for the logs; "" when SQS was not reached.
    sqs_code: str = ""


class Queue(Protocol):
    def send(self, body: str, delay_seconds: int = 0) -> str: ...
    def change_visibility(self, receipt_handle: str, seconds: int) -> int: ...
    def send_to_dead_letter(self, body: str) -> str: ...


# -- outcome callbacks' state (relay.dal.callbacks) --------------------------------------------------


class CallbackStoreFailed(Exception):
    """DynamoDB did not answer: the callback is tried again later."""


class CallbackClaim(Enum):
    TAKEN = "taken"  # this worker POSTs it now
    DELIVERED = "delivered"  # an earlier copy already did
    BUSY = "busy"  # another worker is POSTing it now


@dataclass(frozen=True)
class Claimed:
    claim: CallbackClaim
    # BUSY: when the other worker's hold ends (epoch seconds).
    lock_until: int = 0


class CallbackState(Protocol):
    def claim(self, webhook_id: str, *, now: int, until: int) -> Claimed: ...
    def delivered(self, webhook_id: str, *, now: int) -> None: ...
    def release(self, webhook_id: str) -> None: ...
    def switched_off(self, source: str) -> str | None: ...
    def switch_off(self, source: str, fingerprint: str, *, now: int) -> None: ...
    def take_slot(self, source: str, slots: Sequence[int], *, now: int, until: int) -> int | None: ...
    def free_slot(self, source: str, slot: int) -> None: ...


# -- event subscriptions (relay.dal.subscriptions) --------------------------------------------------

# A source keeps at most this many subscriptions (each Zap trigger is one); one item stays far below
# DynamoDB's 400 KB with URLs of up to 2000 characters.
MAX_SUBSCRIPTIONS_PER_SOURCE = 25


class SubscriptionStoreFailed(Exception):
    """DynamoDB did not answer."""


class TooManySubscriptions(Exception):
    """The source already has MAX_SUBSCRIPTIONS_PER_SOURCE subscriptions."""


class SubscriptionItem(TypedDict):
    """One subscription as stored inside its source's item."""

    url: str
    events: list[str]
    secret: str
    created_at: str


def subscription_item(url: str, events: list[str], secret: str, created_at: str) -> SubscriptionItem:
    return {"url": url, "events": list(events), "secret": secret, "created_at": created_at}


@dataclass(frozen=True)
class StoredSubscription:
    id: str
    url: str
    events: tuple[str, ...]
    created_at: str
    secret: str = field(repr=False)  # never in a log line or a traceback

    def public(self) -> dict[str, Any]:
        """What the source may read back: everything but the secret."""
        return {"id": self.id, "url": self.url, "events": list(self.events), "created_at": self.created_at}


class SubscriptionStore(Protocol):
    def of_source(self, source: str) -> list[StoredSubscription]: ...
    def get(self, source: str, sub_id: str) -> StoredSubscription | None: ...
    def add(self, source: str, sub_id: str, item: SubscriptionItem) -> None: ...
    def remove(self, source: str, sub_id: str) -> bool: ...
