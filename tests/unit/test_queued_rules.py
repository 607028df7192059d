"""Queued work you can steer, with the fakes (tests/unit/fakes.py): cancel wins, moves expire with
their slot, queued work is re-authorised at delivery, and an account's circuit holds its backlog
behind one probe. tests/integration/test_queued_steering.py runs the same rules on the local stack."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from relay.command import RescheduleCommand
from relay.composition import build_adapters
from relay.deadline import Deadline
from relay.errors import RelayError
from relay.ports import circuit_key
from relay.providers.client import ProviderError
from relay.reschedule.circuit import Breaker, Turn, counts
from relay.reschedule.delivery import Deliveries
from relay.reschedule.modes import Mode
from relay.reschedule.queries import Queries
from relay.reschedule.schedule import Disposition, ReceivedMessage
from relay.reschedule.service import RescheduleService
from relay.reschedule.step import AttemptStep
from relay.settings import Settings
from tests.unit.fakes import FakeCircuits, FakeLedger, FakeProviders, FakeRecords, FakeSecrets

SETTINGS = Settings(idempotency_table_name="idem", reschedules_table_name="resch", delivery_queue_url="q")
TOKEN_SECRET = "reschedule-relay/providers/iclosed/default"
ICLOSED_OK = {"data": {"eventCall": {"id": 1001, "dateTime": "2030-01-15T10:00:00", "inviteeEmail": "x"}}}
PROBE_INTERVAL = 10


def _command(start: datetime | None = None, booking: str = "1001") -> RescheduleCommand:
    return RescheduleCommand(
        provider="iclosed",
        account="default",
        booking_id=booking,
        start=start or datetime(2030, 1, 15, 15, 0, tzinfo=UTC),
        end=None,
        timezone="UTC",
    )


def _down(status: int = 503) -> ProviderError:
    return ProviderError(
        detail="down", status=503, code="provider_unavailable", provider_status=status, retryable=False
    )


def _refused(status: int = 404) -> ProviderError:
    return ProviderError(detail="no", status=404, code="booking_not_found", provider_status=status)


class _Queue:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.dead: list[str] = []
        self.hidden: list[int] = []

    def send(self, body: str, delay_seconds: int = 0) -> str:
        self.sent.append(body)
        return "m"

    def send_to_dead_letter(self, body: str) -> str:
        self.dead.append(body)
        return "d"

    def change_visibility(self, receipt_handle: str, seconds: int) -> int:
        self.hidden.append(seconds)
        return seconds


class _Callbacks:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def notify(self, source: str, record: Any) -> None:
        self.sent.append((source, dict(record)))


class _Relay:
    """Both doors over one set of fakes; `clock` drives the circuit's time."""

    def __init__(
        self,
        *answers: dict[str, Any] | ProviderError,
        settings: Settings = SETTINGS,
        refusal: str | None = None,
        circuit: bool = False,
    ) -> None:
        self.records = FakeRecords()
        self.ledger = FakeLedger(self.records)
        self.providers = FakeProviders(*answers)
        self.queue = _Queue()
        self.callbacks = _Callbacks()
        self.circuits = FakeCircuits()
        self.now = [time.time()]
        self.refusal = refusal
        adapters = build_adapters(settings)
        breaker = (
            Breaker(
                self.circuits,
                probe_interval_seconds=PROBE_INTERVAL,
                probe_lease_seconds=15,
                clock=lambda: self.now[0],
            )
            if circuit
            else None
        )
        ids = (f"00000000-0000-4000-8000-{n:012d}" for n in itertools.count(1))
        step = AttemptStep(
            settings,
            secrets=FakeSecrets({TOKEN_SECRET: {"api_key": "iclosed-sandbox-unit"}}),
            chain=self.ledger,
            providers=self.providers,
            adapters=adapters,
            breaker=breaker,
        )
        self.service = RescheduleService(
            settings,
            ledger=self.ledger,
            records=self.records,
            step=step,
            adapters=adapters,
            queue=self.queue,
            new_id=lambda: next(ids),
        )
        self.deliveries = Deliveries(
            settings,
            step=step,
            ledger=self.ledger,
            queue=self.queue,
            callbacks=self.callbacks,  # type: ignore[arg-type]
            authorised=lambda *_: self.refusal,
            sleep=lambda _: None,
        )
        self.queries = Queries(settings, records=self.records, ledger=self.ledger, sleep=lambda _: None)

    def accept(self, command: RescheduleCommand | None = None, mode: Mode = Mode.ASYNC) -> str:
        answer = self.service.reschedule(
            command or _command(),
            source="zapier",
            idempotency_key=None,
            deadline=Deadline(at=time.monotonic() + 10, ends_at=time.monotonic() + 12),
            mode=mode,
            notify=True,
        )
        assert answer["status"] == "queued"
        return str(answer["reschedule_id"])

    def deliver(self, index: int = -1) -> Disposition:
        message = ReceivedMessage(body=self.queue.sent[index], receipt_handle="r", receive_count=1)
        return self.deliveries.deliver(
            message, Deadline(at=time.monotonic() + 50, ends_at=time.monotonic() + 55)
        )

    def record(self, reschedule_id: str) -> dict[str, Any]:
        return self.records.items[reschedule_id]

    def wait_out_next_attempt(self, reschedule_id: str) -> None:
        self.records.items[reschedule_id].pop("next_attempt_at", None)


# -- moves expire with their slot ------------------------------------------------------------------


@pytest.mark.parametrize("mode", [Mode.ASYNC, Mode.AUTO])
def test_an_async_or_auto_request_inside_the_lead_is_refused_naming_start_and_nothing_is_queued(
    mode: Mode,
) -> None:
    relay = _Relay(ICLOSED_OK)
    soon = datetime.now(UTC) + timedelta(seconds=SETTINGS.delivery_min_lead_seconds - 60)
    with pytest.raises(RelayError) as refused:
        relay.accept(_command(soon), mode)
    assert (refused.value.status, refused.value.errors[0].field) == (422, "start")
    assert refused.value.errors[0].code == "inside_lead"
    assert relay.queue.sent == []
    assert relay.providers.calls == []


def test_a_sync_request_inside_the_lead_still_runs() -> None:
    relay = _Relay(ICLOSED_OK)
    soon = datetime.now(UTC) + timedelta(seconds=60)
    answer = relay.service.reschedule(
        _command(soon), source="zapier", idempotency_key=None, deadline=Deadline.within(10)
    )
    assert answer["status"] == "succeeded"


def test_a_queued_move_past_its_last_moment_fails_start_passed_without_a_call_and_is_notified() -> None:
    # Accepted with a lead of 0 (so its start is not inside it), delivered by a worker with the default lead
    start = datetime.now(UTC) + timedelta(seconds=600)
    accepting = _Relay(ICLOSED_OK, settings=SETTINGS.model_copy(update={"delivery_min_lead_seconds": 0}))
    reschedule_id = accepting.accept(_command(start))
    worker = _Relay(ICLOSED_OK)
    worker.records, worker.ledger.records = accepting.records, accepting.records
    worker.ledger.items = accepting.ledger.items
    worker.queue.sent = accepting.queue.sent

    assert worker.deliver() is Disposition.FINISHED

    record = worker.record(reschedule_id)
    assert (record["status"], record["reason"], record["attempts"]) == ("failed", "start_passed", 0)
    assert worker.providers.calls == []
    assert [r["reason"] for _, r in worker.callbacks.sent] == ["start_passed"]
    assert worker.ledger.items == {}  # the key is released


def test_a_waiting_move_is_shown_again_no_later_than_its_last_moment() -> None:
    start = datetime.now(UTC) + timedelta(seconds=SETTINGS.delivery_min_lead_seconds + 30)
    relay = _Relay(_down())
    relay.accept(_command(start))
    assert relay.deliver() is Disposition.WAITING
    # The retry schedule's first wait is about 5 s; the last moment is 30 s away: the smaller one.
    assert relay.queue.hidden[-1] <= 31


# -- re-authorised at delivery ---------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["source_revoked", "account_not_allowed"])
def test_a_queued_move_whose_source_lost_its_right_ends_failed_and_is_never_sent(reason: str) -> None:
    relay = _Relay(ICLOSED_OK)
    reschedule_id = relay.accept()
    relay.refusal = reason
    assert relay.deliver() is Disposition.FINISHED
    record = relay.record(reschedule_id)
    assert (record["status"], record["reason"], record["http_status"]) == ("failed", reason, 403)
    assert relay.providers.calls == []
    assert relay.ledger.items == {}


# -- cancel wins -----------------------------------------------------------------------------------


def test_a_cancel_while_the_worker_holds_the_request_before_its_call_means_no_call_starts() -> None:
    # Given a delivery that holds the lock and waits for its pacing slot when the cancel comes
    relay = _Relay(ICLOSED_OK)
    reschedule_id = relay.accept()
    answers: list[dict[str, Any]] = []
    relay.providers.before_call.append(lambda: answers.append(relay.queries.cancel("zapier", reschedule_id)))

    assert relay.deliver() is Disposition.FINISHED

    # Then the cancel is final at once, and the guard stopped the call
    assert answers[0]["status"] == "cancelled"
    assert relay.record(reschedule_id)["status"] == "cancelled"
    assert relay.providers.tries == []  # the fake counts a try only past the guard
    assert relay.callbacks.sent == []


def test_a_cancel_during_a_call_that_moves_the_booking_comes_too_late_and_the_record_says_succeeded() -> None:
    relay = _Relay(ICLOSED_OK)
    reschedule_id = relay.accept()
    answers: list[dict[str, Any]] = []
    relay.providers.during_call.append(
        lambda: answers.append(relay.queries.cancel("zapier", reschedule_id, Deadline.within(0.5)))
    )

    relay.deliver()

    # The cancel was noted (no wait left to see the outcome), and the call's success stands
    assert (answers[0]["status"], answers[0]["stop_requested"]) == ("queued", "cancelled_by_source")
    assert relay.record(reschedule_id)["status"] == "succeeded"
    assert len(relay.providers.calls) == 1


def test_a_cancel_during_a_call_that_fails_ends_cancelled_and_stops_the_retries() -> None:
    relay = _Relay(_down())
    reschedule_id = relay.accept()
    relay.providers.during_call.append(
        lambda: relay.queries.cancel("zapier", reschedule_id, Deadline.within(0.5))
    )

    assert relay.deliver() is Disposition.FINISHED

    record = relay.record(reschedule_id)
    assert record["status"] == "cancelled"
    assert relay.ledger.items == {}  # the key is free again
    assert len(relay.providers.calls) == 1
    assert relay.callbacks.sent == []


def test_a_cancel_between_attempts_is_final_and_the_next_copy_is_dropped_without_a_call() -> None:
    relay = _Relay(_down(), ICLOSED_OK)
    reschedule_id = relay.accept()
    assert relay.deliver() is Disposition.WAITING
    assert relay.queries.cancel("zapier", reschedule_id)["status"] == "cancelled"
    relay.wait_out_next_attempt(reschedule_id)
    assert relay.deliver() is Disposition.FINISHED
    assert len(relay.providers.calls) == 1


# -- the circuit -----------------------------------------------------------------------------------


def test_which_failures_count_for_the_circuit() -> None:
    assert counts(_down())
    assert counts(ProviderError(detail="t", status=504, code="provider_timeout"))
    assert counts(ProviderError(detail="u", status=502, code="provider_unreachable"))
    assert counts(ProviderError(detail="e", status=502, code="provider_error", provider_status=500))
    assert not counts(ProviderError(detail="e", status=502, code="provider_error", provider_status=418))
    assert not counts(_refused())
    assert not counts(
        ProviderError(detail="r", status=429, code="provider_rate_limited", provider_status=429)
    )


def test_a_closed_circuit_costs_no_write_and_leaves_the_client_its_retries() -> None:
    relay = _Relay(ICLOSED_OK, circuit=True)
    relay.accept()
    relay.deliver()
    assert relay.circuits.items == {}
    assert relay.providers.tries == [3]


def test_an_outage_holds_the_backlog_behind_one_probe_and_a_probe_that_answers_closes_it() -> None:
    relay = _Relay(_down(), _down(), ICLOSED_OK, circuit=True)
    first = relay.accept(_command(booking="1001"))
    second = relay.accept(_command(booking="1002"))
    key = circuit_key("iclosed", "default")

    # The first attempt fails: the circuit opens
    assert relay.deliver(0) is Disposition.WAITING
    assert relay.circuits.items[key].open
    # While the next probe is not due, the backlog waits without a call
    relay.wait_out_next_attempt(second)
    assert relay.deliver(1) is Disposition.WAITING
    assert len(relay.providers.calls) == 1
    assert relay.queue.hidden[-1] >= PROBE_INTERVAL - 1
    # When it is due, one delivery probes with one try; its failure keeps the circuit open
    relay.now[0] += PROBE_INTERVAL + 1
    assert relay.deliver(1) is Disposition.WAITING
    assert relay.providers.tries == [3, 1]
    assert relay.circuits.items[key].open
    # The next probe answers: the circuit closes and the backlog goes as usual
    relay.now[0] += PROBE_INTERVAL + 1
    relay.wait_out_next_attempt(first)
    assert relay.deliver(0) is Disposition.FINISHED
    assert relay.record(first)["status"] == "succeeded"
    assert key not in relay.circuits.items
    relay.wait_out_next_attempt(second)
    assert relay.deliver(1) is Disposition.FINISHED
    assert relay.providers.tries == [3, 1, 1, 3]


def test_a_probe_lease_is_one_at_a_time_and_a_refusal_closes_the_circuit() -> None:
    circuits = FakeCircuits()
    now = [1000.0]
    breaker = Breaker(
        circuits, probe_interval_seconds=PROBE_INTERVAL, probe_lease_seconds=15, clock=lambda: now[0]
    )
    key = circuit_key("iclosed", "default")
    circuits.trip(key, now=1000, next_probe_at=1000)
    probe = breaker.admit("iclosed", "default", "a")
    other = breaker.admit("iclosed", "default", "b")
    assert (probe.turn, other.turn) == (Turn.PROBE, Turn.HELD)
    assert 1 <= other.wait_seconds <= 3
    # The provider answered (a 404 is an answer): it is up
    breaker.settled(probe, _refused(), called=True)
    assert breaker.admit("iclosed", "default", "b").turn is Turn.CLOSED


def test_an_unused_probe_lease_is_given_back() -> None:
    circuits = FakeCircuits()
    breaker = Breaker(
        circuits, probe_interval_seconds=PROBE_INTERVAL, probe_lease_seconds=15, clock=lambda: 1000.0
    )
    key = circuit_key("iclosed", "default")
    circuits.trip(key, now=1000, next_probe_at=1000)
    probe = breaker.admit("iclosed", "default", "a")
    breaker.settled(probe, None, called=False)
    assert breaker.admit("iclosed", "default", "b").turn is Turn.PROBE


def test_the_guard_stops_a_call_whose_last_moment_passed_while_it_waited_for_its_slot() -> None:
    # Given a move whose last moment comes while its delivery waits (as for a pacing slot)
    start = datetime.now(UTC) + timedelta(seconds=SETTINGS.delivery_min_lead_seconds + 1)
    relay = _Relay(ICLOSED_OK)
    reschedule_id = relay.accept(_command(start))
    waited: list[bool] = []

    def wait_for_the_slot() -> None:
        waited.append(True)
        time.sleep(1.2)

    relay.providers.before_call.append(wait_for_the_slot)

    assert relay.deliver() is Disposition.FINISHED

    record = relay.record(reschedule_id)
    assert (record["status"], record["reason"], record["attempts"]) == ("failed", "start_passed", 0)
    assert waited == [True]  # it got as far as the wait: the guard, not the check before, stopped it
    assert relay.providers.tries == []
