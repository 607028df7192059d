"""Small in-memory fakes of the use cases' ports (relay/ports.py), for unit tests of the service.

Each keeps the contract of the real component it stands for (tests/integration runs the real ones),
and mypy checks that each implements its Protocol: the ledger refuses a live key like DynamoDB's
conditional put, and writes the attempt record together with the key's completion or release, like
relay.dal.ledger.Ledger.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from relay.command import RescheduleCommand
from relay.dal.ledger import COMPLETED, IN_PROGRESS, UNSETTLED, ledger_key
from relay.errors import not_configured
from relay.ports import (
    Answered,
    BadCursor,
    CircuitView,
    Claim,
    HistoryPage,
    KeyInProgress,
    KeyReused,
    LedgerKey,
    LedgerUnavailable,
    LockNotHeld,
    RecordWriteFailed,
    Stopping,
    chain_key,
)
from relay.providers.base import Credentials, OutboundRequest, Provider
from relay.providers.client import ProviderError, ProviderReply

if TYPE_CHECKING:
    from relay.deadline import Deadline
    from relay.ports import BookingChain, Circuits, Ledger, Records, Secrets
    from relay.providers.client import SendPolicy
    from relay.providers.pacing import Pacing
    from relay.reschedule.step import Providers


class FakeSecrets:
    """SecretStore's port: JSON secrets by name; a missing one is `not_configured`, like the real one."""

    def __init__(self, values: Mapping[str, dict[str, Any]]) -> None:
        self.values = dict(values)
        self.reads: list[tuple[str, bool]] = []
        self.prefetches: list[str] = []  # the names asked for before a run (read later by get_json)

    def prefetch(self, name: str) -> None:
        self.prefetches.append(name)

    def get_json(self, name: str, *, force_fetch: bool = False) -> dict[str, Any]:
        self.reads.append((name, force_fetch))
        if name not in self.values:
            raise not_configured(f"secret {name!r} does not exist.")
        return self.values[name]


class FakeRecords:
    """RecordStore's port: attempts by id; `fail` makes writes fail like an unavailable table."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.fail = False

    def put(self, record: Mapping[str, Any]) -> None:
        if self.fail:
            raise RecordWriteFailed("ClientError")
        if record["reschedule_id"] in self.items:
            raise RecordWriteFailed("ConditionalCheckFailedException")
        self.items[record["reschedule_id"]] = {k: v for k, v in record.items() if v is not None}

    def get(self, reschedule_id: str) -> dict[str, Any] | None:
        return self.items.get(reschedule_id)

    def history_page(
        self, source: str, provider: str, booking_id: str, *, limit: int, cursor: str | None
    ) -> HistoryPage:
        if cursor is not None:
            raise BadCursor
        mine = [
            r
            for r in self.items.values()
            if (r.get("source"), r.get("provider"), r.get("booking_id")) == (source, provider, booking_id)
        ]
        return HistoryPage(sorted(mine, key=lambda r: str(r["attempted_at"]), reverse=True)[:limit], None)


class FakeLedger:
    """The ledger in memory: one item per key, the last moves, and the records written with them."""

    def __init__(self, records: FakeRecords) -> None:
        self.records = records
        self.items: dict[str, dict[str, Any]] = {}
        self.last_moves: dict[str, str] = {}
        # chain_key(provider, old id) -> the new id a success created (Cal.com)
        self.chain: dict[str, str] = {}
        # Set to make completions fail like an unavailable table (after the provider answered).
        self.fail_completion = False

    def key(
        self,
        scoped_key: str,
        payload: Any,
        *,
        source: str,
        provider: str,
        booking_id: str,
        content_keyed: bool,
    ) -> LedgerKey:
        return ledger_key(
            scoped_key,
            payload,
            source=source,
            provider=provider,
            booking_id=booking_id,
            content_keyed=content_keyed,
        )

    def take(self, key: LedgerKey, *, now: float, lock_seconds: float, expires_at: int) -> Claim | Answered:
        old = self.items.get(key.item_id)
        free = (
            old is None
            or old["expires_at"] < now
            or old["status"] == UNSETTLED
            or (old["status"] == IN_PROGRESS and old["lock_until"] < now)
        )
        if not free:
            assert old is not None
            if old["payload_hash"] != key.payload_hash:
                raise KeyReused
            if old["status"] != COMPLETED:
                raise KeyInProgress
            answer = json.loads(old["answer"])
            stale = key.content_keyed and answer.get("status") == "succeeded"
            if not (stale and self.last_moves.get(key.last_move_id) != key.item_id):
                return Answered(answer)
        settle_first = old is not None and old["status"] == UNSETTLED
        self.items[key.item_id] = {
            "status": IN_PROGRESS,
            "payload_hash": key.payload_hash,
            "lock_until": now + lock_seconds,
            "expires_at": expires_at,
        }
        return Claim(key, settle_first=settle_first)

    def accept_queued(
        self,
        key: LedgerKey,
        answer: Mapping[str, Any],
        record: Mapping[str, Any],
        *,
        now: float,
        expires_at: int,
        personal: Mapping[str, Any] | None = None,
    ) -> Claim | Answered | None:
        taken = self.take(key, now=now, lock_seconds=0, expires_at=expires_at)
        if isinstance(taken, Answered):
            return taken
        self.complete_queued(taken, answer, record, expires_at=expires_at, personal=personal)
        return None

    def personal(self, item_id: str) -> dict[str, Any] | None:
        found = self.items.get(item_id, {}).get("personal")
        return dict(found) if found else None

    def answered_by(self, item_id: str) -> str | None:
        item = self.items.get(item_id)
        if item is None or item["status"] != COMPLETED:
            return None
        owner = json.loads(item["answer"]).get("reschedule_id")
        return str(owner) if owner else None

    def _answer(self, item_id: str, answer: Mapping[str, Any], expires_at: int) -> None:
        if self.fail_completion:
            raise LedgerUnavailable("ClientError")
        self.items[item_id] |= {"status": COMPLETED, "answer": json.dumps(answer), "expires_at": expires_at}
        self.items[item_id].pop("personal", None)

    def complete(
        self, claim: Claim, answer: Mapping[str, Any], record: Mapping[str, Any], *, expires_at: int
    ) -> None:
        self._answer(claim.key.item_id, answer, expires_at)
        self.last_moves[claim.key.last_move_id] = claim.key.item_id
        self.records.put(record)
        self._chain(record)

    def _chain(self, record: Mapping[str, Any]) -> None:
        if record.get("new_booking_id") and record["new_booking_id"] != record.get("booking_id"):
            self.chain[chain_key(record["provider"], record["booking_id"])] = record["new_booking_id"]

    def latest_booking_id(self, provider: str, booking_id: str) -> str | None:
        latest, seen = booking_id, {booking_id}
        while (newer := self.chain.get(chain_key(provider, latest))) and newer not in seen:
            latest = newer
            seen.add(newer)
        return latest if latest != booking_id else None

    def complete_queued(
        self,
        claim: Claim,
        answer: Mapping[str, Any],
        record: Mapping[str, Any],
        *,
        expires_at: int,
        personal: Mapping[str, Any] | None = None,
    ) -> None:
        self._answer(claim.key.item_id, answer, expires_at)
        if personal:
            self.items[claim.key.item_id]["personal"] = dict(personal)
        self.records.put(record)

    def release(self, claim: Claim, record: Mapping[str, Any], *, unsettled: bool = False) -> None:
        if self.fail_completion:
            raise LedgerUnavailable("ClientError")
        if unsettled:
            self.items[claim.key.item_id] |= {"status": UNSETTLED}
        else:
            self.items.pop(claim.key.item_id, None)
        self.records.put(record)

    def release_quietly(self, claim: Claim) -> None:
        self.items.pop(claim.key.item_id, None)

    def read_record(self, reschedule_id: str) -> dict[str, Any] | None:
        return self.records.get(reschedule_id)

    def lock_delivery(self, reschedule_id: str, token: str, *, now: int, until: int) -> None:
        record = self.records.items.get(reschedule_id)
        if (
            record is None
            or record.get("status") != "queued"
            or record.get("delivery_lock_expires", 0) >= now
        ):
            raise LockNotHeld
        record |= {"delivery_lock": token, "delivery_lock_expires": until}
        record.pop("sending", None)

    def _locked(self, record: Mapping[str, Any], token: str) -> None:
        if self.records.items.get(str(record["reschedule_id"]), {}).get("delivery_lock") != token:
            raise LockNotHeld
        self.records.items[str(record["reschedule_id"])] = {k: v for k, v in record.items() if v is not None}

    def progress(self, record: Mapping[str, Any], token: str) -> None:
        if "stop_requested" in self.records.items.get(str(record["reschedule_id"]), {}):
            raise LockNotHeld
        self._locked(record, token)

    def delivered(
        self,
        record: Mapping[str, Any],
        token: str,
        *,
        item_id: str,
        answer: Mapping[str, Any],
        expires_at: int,
    ) -> None:
        self._locked(record, token)
        self._answer(item_id, answer, expires_at)
        self._chain(record)

    def undelivered(self, record: Mapping[str, Any], token: str, *, item_id: str) -> None:
        self._locked(record, token)
        self.items.pop(item_id, None)

    def cancel(self, record: Mapping[str, Any], *, item_id: str, now: int) -> None:
        stored = self.records.items.get(str(record["reschedule_id"]), {})
        if stored.get("status") != "queued":
            raise LockNotHeld
        if "sending" in stored and stored.get("delivery_lock_expires", 0) >= now:
            stored["stop_requested"] = record.get("reason") or "cancelled_by_source"
            raise Stopping
        self.records.items[str(record["reschedule_id"])] = {k: v for k, v in record.items() if v is not None}
        self.items.pop(item_id, None)

    def guard_send(self, reschedule_id: str, token: str) -> None:
        stored = self.records.items.get(reschedule_id, {})
        if (
            stored.get("delivery_lock") != token
            or stored.get("status") != "queued"
            or "stop_requested" in stored
        ):
            raise LockNotHeld
        stored["sending"] = token


class FakeCircuits:
    """CircuitStore's port: the circuits by key, with the probe lease's condition."""

    def __init__(self) -> None:
        self.items: dict[str, CircuitView] = {}
        self.leases: dict[str, str] = {}

    def read(self, key: str) -> CircuitView | None:
        return self.items.get(key)

    def take_probe(self, key: str, token: str, *, now: int, until: int) -> CircuitView | None:
        view = self.items.get(key)
        if view is None or not view.open or view.next_probe_at > now or view.probe_until >= now:
            return view or CircuitView(False, 0, 0, 0)
        self.items[key] = CircuitView(True, view.next_probe_at, until, view.failures)
        self.leases[key] = token
        return None

    def trip(self, key: str, *, now: int, next_probe_at: int) -> None:
        failures = self.items[key].failures if key in self.items else 0
        self.items[key] = CircuitView(True, next_probe_at, 0, failures + 1)
        self.leases.pop(key, None)

    def close(self, key: str) -> None:
        self.items.pop(key, None)
        self.leases.pop(key, None)

    def release_probe(self, key: str, token: str) -> None:
        if self.leases.get(key) == token:
            view = self.items[key]
            self.items[key] = CircuitView(view.open, view.next_probe_at, 0, view.failures)
            del self.leases[key]


class FakeProviders:
    """ProviderClient's port: answers from a script (a reply body, or a ProviderError), recording calls."""

    def __init__(self, *answers: dict[str, Any] | ProviderError) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, OutboundRequest, str]] = []
        # The tries each call was allowed (the policy's max_tries; 3 without one).
        self.tries: list[int] = []
        # Run before the policy's guard (as while pacing), and after it (while the call is under way).
        self.before_call: list[Any] = []
        self.during_call: list[Any] = []
        # Each call's `settle_first`: whether it was asked to read the booking before sending.
        self.settle_first: list[bool] = []

    def move(
        self,
        provider: Provider,
        command: RescheduleCommand,
        credentials: Credentials,
        deadline: Deadline | None = None,
        pacing: Pacing | None = None,
        *,
        policy: SendPolicy | None = None,
        settle_first: bool = False,
    ) -> ProviderReply:
        for hook in self.before_call:
            hook()
        if policy is not None and policy.before_each is not None:
            policy.before_each()
        for hook in self.during_call:
            hook()
        self.tries.append(policy.max_tries if policy is not None else 3)
        # Recorded as (provider, the request its adapter builds, the Authorization header's value).
        request = provider.build_request(command)
        self.settle_first.append(settle_first)
        self.calls.append(
            (provider.name, request, credentials.headers()["Authorization"].removeprefix("Bearer "))
        )
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, ProviderError):
            raise answer
        return ProviderReply(200, answer, 12)


# mypy holds each fake to the Protocol it stands for.
_LEDGER: type[Ledger] = FakeLedger
_CHAIN: type[BookingChain] = FakeLedger
_RECORDS: type[Records] = FakeRecords
_SECRETS: type[Secrets] = FakeSecrets
_PROVIDERS: type[Providers] = FakeProviders
_CIRCUITS: type[Circuits] = FakeCircuits
