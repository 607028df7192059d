"""The use case's quota rules with in-memory fakes: who is counted, when, and what a refusal leaves."""

from __future__ import annotations

import itertools
import time
from dataclasses import replace

import pytest

from relay.composition import build_adapters
from relay.deadline import Deadline
from relay.errors import RelayError
from relay.ports import QuotaExceeded, Quotas, SourceQuotas
from relay.reschedule.modes import Mode
from relay.reschedule.service import RescheduleService
from relay.reschedule.step import AttemptStep
from tests.unit.fakes import FakeLedger, FakeProviders, FakeRecords, FakeSecrets
from tests.unit.test_service import COMMAND, ICLOSED_OK, SETTINGS, TOKEN_SECRET


class FakeQuotas:
    """QuotaCounters' port: one member per key per counter, like the DynamoDB items (no windows)."""

    def __init__(self) -> None:
        self.rate: dict[str, set[str]] = {}
        self.moves: dict[tuple[str, str, str], set[str]] = {}
        self.backlog: dict[str, set[str]] = {}
        self.counted: list[str] = []

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
    ) -> None:
        """All or nothing, like the real one's transaction."""
        self.counted.append(item_id)
        counters = [
            ("requests_per_minute", 30, self.rate.setdefault(source, set()), quotas.requests_per_minute),
            (
                "moves_per_booking_per_day",
                3600,
                self.moves.setdefault((source, provider, booking_id), set()),
                quotas.moves_per_booking_per_day,
            ),
        ]
        if queued:
            counters.append(
                ("queued_backlog", 60, self.backlog.setdefault(source, set()), quotas.queued_backlog)
            )
        for quota, retry_after, members, limit in counters:
            if limit is not None and _full(members, item_id, limit):
                raise QuotaExceeded(quota, retry_after)
        for _, _, members, _ in counters:
            members.add(item_id)

    def enter_backlog(self, source: str, item_id: str, *, quotas: SourceQuotas, now: float) -> None:
        members = self.backlog.setdefault(source, set())
        if quotas.queued_backlog is not None and _full(members, item_id, quotas.queued_backlog):
            raise QuotaExceeded("queued_backlog", 60)
        members.add(item_id)

    def leave_backlog(self, source: str, item_id: str) -> None:
        self.backlog.get(source, set()).discard(item_id)


def _full(members: set[str], item_id: str, limit: int) -> bool:
    return item_id not in members and len(members) >= limit


_QUOTAS: type[Quotas] = FakeQuotas


class _Queue:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, body: str, delay_seconds: int = 0) -> str:
        self.sent.append(body)
        return "m"

    def send_to_dead_letter(self, body: str) -> str:
        return "d"

    def change_visibility(self, receipt_handle: str, seconds: int) -> int:
        return seconds


def _service(
    *answers: dict[str, object], queue: _Queue | None = None
) -> tuple[RescheduleService, FakeLedger, FakeQuotas, FakeProviders]:
    records = FakeRecords()
    ledger = FakeLedger(records)
    counters = FakeQuotas()
    providers = FakeProviders(*(answers or (ICLOSED_OK,)))
    adapters = build_adapters(SETTINGS)
    secrets = FakeSecrets({TOKEN_SECRET: {"api_key": "iclosed-sandbox-unit"}})
    step = AttemptStep(SETTINGS, secrets=secrets, chain=ledger, providers=providers, adapters=adapters)
    ids = (f"00000000-0000-4000-8000-{n:012d}" for n in itertools.count(1))
    service = RescheduleService(
        SETTINGS,
        ledger=ledger,
        records=records,
        step=step,
        adapters=adapters,
        counters=counters,
        queue=queue,
        new_id=lambda: next(ids),
    )
    return service, ledger, counters, providers


def _run(service: RescheduleService, key: str, quotas: SourceQuotas, **changes: object) -> dict[str, object]:
    deadline = Deadline(at=time.monotonic() + 10, ends_at=time.monotonic() + 12)
    command = COMMAND.model_copy(update=changes) if changes else COMMAND
    return service.reschedule(command, source="zapier", idempotency_key=key, deadline=deadline, quotas=quotas)


def test_over_the_moves_quota_is_429_recorded_and_the_key_freed_while_replays_are_not_counted() -> None:
    service, ledger, counters, providers = _service()
    quotas = SourceQuotas(moves_per_booking_per_day=1)
    assert _run(service, "key-1", quotas)["status"] == "succeeded"
    # A new key for the same booking: over the quota, nothing sent, recorded, the key free again
    with pytest.raises(RelayError) as over:
        _run(service, "key-2", quotas, start=COMMAND.start.replace(hour=16))
    assert (over.value.status, over.value.code, over.value.retry_after) == (
        429,
        "quota_moves_per_booking_per_day",
        3600,
    )
    record = ledger.records.items[over.value.extra["reschedule_id"]]
    assert (record["status"], record["reason"]) == ("failed", "quota_moves_per_booking_per_day")
    assert len(providers.calls) == 1
    assert len(ledger.items) == 1  # only key-1's answer: key-2 was released
    # The first key again (a replay) is answered without being counted
    counted = list(counters.counted)
    assert _run(service, "key-1", quotas)["replayed"] is True
    assert counters.counted == counted
    # And with the quota off, the same move runs
    assert (
        _run(
            service,
            "key-2",
            replace(quotas, moves_per_booking_per_day=None),
            start=COMMAND.start.replace(hour=16),
        )["status"]
        == "succeeded"
    )


def test_no_quotas_given_means_nothing_is_counted() -> None:
    service, _, counters, _ = _service()
    deadline = Deadline(at=time.monotonic() + 10, ends_at=time.monotonic() + 12)
    service.reschedule(COMMAND, source="zapier", idempotency_key="k", deadline=deadline)
    assert counters.counted == []


def test_a_full_backlog_refuses_a_new_async_request_before_anything_is_sent_but_not_its_repeat() -> None:
    queue = _Queue()
    service, ledger, counters, _ = _service(queue=queue)
    quotas = SourceQuotas(queued_backlog=1)
    deadline = Deadline(at=time.monotonic() + 10, ends_at=time.monotonic() + 12)

    def accept(key: str, hour: int) -> dict[str, object]:
        command = COMMAND.model_copy(update={"start": COMMAND.start.replace(hour=hour)})
        return service.reschedule(
            command, source="zapier", idempotency_key=key, deadline=deadline, mode=Mode.ASYNC, quotas=quotas
        )

    assert accept("a-1", 15)["status"] == "queued"
    with pytest.raises(RelayError) as over:
        accept("a-2", 16)
    assert (over.value.status, over.value.code) == (429, "quota_queued_backlog")
    assert ledger.records.items[over.value.extra["reschedule_id"]]["reason"] == "quota_queued_backlog"
    assert len(queue.sent) == 1
    # The first one's repeat keeps its place and gets its 202 again
    again = accept("a-1", 15)
    assert (again["status"], again["replayed"]) == ("queued", True)
    assert counters.backlog["zapier"] == {next(iter(ledger.items))}
