"""The use case on its own, with in-memory fakes of its ports (tests/unit/fakes.py).

The same behaviour runs against DynamoDB Local, the Secrets Manager emulator and the sandbox
providers in tests/integration; here each rule is checked in isolation, fast.
"""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from relay.command import RescheduleCommand
from relay.composition import build_adapters
from relay.deadline import Deadline
from relay.errors import RelayError
from relay.providers.client import ProviderError
from relay.reschedule.attempts import RescheduleResult
from relay.reschedule.queries import Queries
from relay.reschedule.service import RescheduleService
from relay.reschedule.step import AttemptStep
from relay.settings import Settings
from tests.unit.fakes import FakeLedger, FakeProviders, FakeRecords, FakeSecrets

SETTINGS = Settings(idempotency_table_name="idem", reschedules_table_name="resch")
TOKEN_SECRET = "reschedule-relay/providers/iclosed/default"
COMMAND = RescheduleCommand(
    provider="iclosed",
    account="default",
    booking_id="1001",
    start=datetime(2030, 1, 15, 15, 0, tzinfo=UTC),
    end=None,
    timezone="America/New_York",
)
ICLOSED_OK = {"data": {"eventCall": {"id": 1001, "dateTime": "2030-01-15T10:00:00", "inviteeEmail": "x"}}}


def _service(
    providers: FakeProviders, *, failing_completion: bool = False
) -> tuple[RescheduleService, FakeRecords, FakeSecrets]:
    records = FakeRecords()
    secrets = FakeSecrets({TOKEN_SECRET: {"api_key": "iclosed-sandbox-unit"}})
    ids = (f"00000000-0000-4000-8000-{n:012d}" for n in itertools.count(1))
    ledger = FakeLedger(records)
    # The idempotency table goes away after the provider answered: completing the key fails.
    ledger.fail_completion = failing_completion
    adapters = build_adapters(SETTINGS)
    step = AttemptStep(SETTINGS, secrets=secrets, chain=ledger, providers=providers, adapters=adapters)
    service = RescheduleService(
        SETTINGS, ledger=ledger, records=records, step=step, adapters=adapters, new_id=lambda: next(ids)
    )
    return service, records, secrets


def _run(service: RescheduleService, key: str | None = "key-1", command: RescheduleCommand = COMMAND) -> Any:
    # A deadline that knows the invocation's end, as the doors give (it sizes the in-progress lock).
    deadline = Deadline(at=time.monotonic() + 10, ends_at=time.monotonic() + 12)
    return service.reschedule(command, source="zapier", idempotency_key=key, deadline=deadline)


def _provider_error(status: int, code: str) -> ProviderError:
    return ProviderError(detail="refused", status=status, code=code, provider_status=status, latency_ms=3)


def test_a_success_calls_the_provider_once_records_it_and_replays_from_the_store() -> None:
    providers = FakeProviders(ICLOSED_OK)
    service, records, _ = _service(providers)

    first = _run(service)
    again = _run(service)

    assert (first["status"], first["replayed"], again["replayed"]) == ("succeeded", False, True)
    assert again["reschedule_id"] == first["reschedule_id"]
    assert len(providers.calls) == 1
    _, request, token = providers.calls[0]
    assert request.json is not None
    assert (request.path, request.json["dateTime"], token) == (
        "/v1/eventCalls/reschedule",
        "2030-01-15T10:00:00",
        "iclosed-sandbox-unit",
    )
    (record,) = records.items.values()
    assert (record["status"], record["source"], record["booking_key"]) == (
        "succeeded",
        "zapier",
        "iclosed#1001",
    )
    assert "inviteeEmail" not in str(record)  # trimmed: no personal data stored


def test_a_run_asks_for_the_account_secret_before_its_lock_and_reads_it_after() -> None:
    # The store reads a prefetched name on a thread while the lock is taken (relay/dal/secrets.py).
    service, _, secrets = _service(FakeProviders(ICLOSED_OK))

    _run(service)

    assert secrets.prefetches == [TOKEN_SECRET]
    assert secrets.reads == [(TOKEN_SECRET, False)]


def test_a_provider_refusal_is_recorded_and_releases_the_key() -> None:
    providers = FakeProviders(_provider_error(404, "booking_not_found"), ICLOSED_OK)
    service, records, _ = _service(providers)

    with pytest.raises(RelayError) as refused:
        _run(service)
    retried = _run(service)

    assert refused.value.code == "booking_not_found"
    assert refused.value.extra["reschedule_id"] in records.items
    assert retried["replayed"] is False
    assert len(providers.calls) == 2
    assert sorted(r["status"] for r in records.items.values()) == ["failed", "succeeded"]


def test_a_malformed_idempotency_key_is_refused_recorded_and_sends_nothing() -> None:
    providers = FakeProviders(ICLOSED_OK)
    service, records, _ = _service(providers)

    with pytest.raises(RelayError) as refused:
        _run(service, key="has space")

    assert refused.value.errors[0].field == "Idempotency-Key"
    assert providers.calls == []
    (record,) = records.items.values()
    assert (record["status"], record["reason"], record["booking_id"]) == (
        "failed",
        "validation_failed",
        "1001",
    )


def test_the_same_key_with_another_request_is_refused() -> None:
    service, _, _ = _service(FakeProviders(ICLOSED_OK))
    _run(service)
    with pytest.raises(RelayError) as refused:
        _run(service, command=COMMAND.model_copy(update={"booking_id": "1002"}))
    assert (refused.value.status, refused.value.code) == (422, "idempotency_key_reused")


def test_without_a_key_the_command_itself_is_the_key() -> None:
    providers = FakeProviders(ICLOSED_OK)
    service, _, _ = _service(providers)
    assert _run(service, key=None)["replayed"] is False
    assert _run(service, key=None)["replayed"] is True
    assert (
        _run(service, key=None, command=COMMAND.model_copy(update={"booking_id": "1002"}))["replayed"]
        is False
    )
    assert len(providers.calls) == 2


def test_refused_credentials_are_read_again_once_bypassing_the_cache() -> None:
    providers = FakeProviders(_provider_error(401, "provider_auth_failed"), ICLOSED_OK)
    service, _, secrets = _service(providers)
    assert _run(service)["status"] == "succeeded"
    assert secrets.reads == [(TOKEN_SECRET, False), (TOKEN_SECRET, True)]


def test_a_provider_success_stands_when_its_outcome_cannot_be_stored_with_the_lock() -> None:
    service, records, _ = _service(FakeProviders(ICLOSED_OK), failing_completion=True)
    answer = _run(service)
    assert answer["status"] == "succeeded"
    # Written on its own instead, so the history still has it.
    assert records.items[answer["reschedule_id"]]["status"] == "succeeded"


def test_a_record_is_visible_only_to_its_source() -> None:
    service, records, _ = _service(FakeProviders(ICLOSED_OK))
    queries = Queries(SETTINGS, records=records, ledger=FakeLedger(records))
    reschedule_id = _run(service)["reschedule_id"]
    assert queries.get("zapier", reschedule_id)["status"] == "succeeded"
    with pytest.raises(RelayError) as hidden:
        queries.get("another-source", reschedule_id)
    assert hidden.value.code == "reschedule_not_found"


def test_the_success_answer_has_exactly_the_documented_fields_and_validates() -> None:
    service, _, _ = _service(FakeProviders(ICLOSED_OK))
    answer = _run(service)
    assert set(answer) == set(RescheduleResult.model_fields)
    RescheduleResult.model_validate(answer)  # the OpenAPI shape is what the relay answers


def test_a_replay_is_the_first_answer_field_for_field_in_order_plus_the_flag() -> None:
    service, _, _ = _service(FakeProviders(ICLOSED_OK))
    first = _run(service)
    again = _run(service)
    assert list(again) == list(first)
    assert {k: v for k, v in again.items() if k != "replayed"} == {
        k: v for k, v in first.items() if k != "replayed"
    }


def test_a_content_keyed_move_back_runs_again_a_to_b_to_a() -> None:
    providers = FakeProviders(ICLOSED_OK)
    service, _, _ = _service(providers)
    to_b = COMMAND.model_copy(update={"start": datetime(2030, 1, 16, 15, 0, tzinfo=UTC)})
    answers = [_run(service, key=None, command=c) for c in (COMMAND, to_b, COMMAND, COMMAND)]
    assert [a["replayed"] for a in answers] == [False, False, False, True]
    assert len(providers.calls) == 3


def test_a_worker_deadline_is_its_own_invocation_not_the_http_cap() -> None:
    class Context:
        def get_remaining_time_in_millis(self) -> int:
            return 58_000

    worker = Deadline.for_worker(Context(), 2.0)
    door = Deadline.for_invocation(Context(), 2.0)
    assert worker.remaining() > 50 > door.remaining()


ACUITY_SECRET = "reschedule-relay/providers/acuity/default"
ACUITY_COMMAND = RescheduleCommand(
    provider="acuity",
    account="default",
    booking_id="2001",
    start=datetime(2030, 1, 15, 15, 0, tzinfo=UTC),
    end=None,
    timezone="America/New_York",
)


def _lost_answer() -> ProviderError:
    error = _provider_error(503, "provider_unavailable")
    error.outcome_unknown = True
    return error


@pytest.mark.parametrize(
    ("command", "reads_first"),
    [(ACUITY_COMMAND, True), (COMMAND, False)],  # Acuity's move is not safe to repeat; iClosed's is
)
def test_after_an_unsettled_lost_answer_the_callers_retry_reads_the_booking_first(
    command: RescheduleCommand, reads_first: bool
) -> None:
    ok = {"id": 2001, "datetime": "2030-01-15T10:00:00-0500"} if command is ACUITY_COMMAND else ICLOSED_OK
    providers = FakeProviders(_lost_answer(), ok, ok)
    service, _, secrets = _service(providers)
    secrets.values[ACUITY_SECRET] = {"user_id": "1", "api_key": "acuity-sandbox-unit"}

    with pytest.raises(RelayError):
        _run(service, command=command)
    _run(service, command=command)  # the caller's retry, same key
    _run(service, command=command, key="key-2")  # another request: nothing unknown about it

    assert providers.settle_first == [False, reads_first, False]
