"""The performance budgets that are counts, not timings: remote calls per request.

Timings vary from machine to machine and belong in `make bench`'s output; these counts do not, so
they are asserted here, with the benchmark's own counting code (bench.counting) and limits
(bench.budgets). The handler runs in-process with its module-level clients, as in one container.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from bench.budgets import (
    DYNAMODB_CALLS_REPLAY,
    MAX_CONNECTIONS_PER_PROVIDER,
    MAX_DYNAMODB_CALLS_NEW,
    MAX_SECRETS_CALLS_WARM,
)
from bench.counting import SandboxControl, count_sends
from bench.workload import PROVIDER, Reschedule, Workload
from local.seed import SECRETS_PREFIX
from local.stack import Stack
from tests.helpers import WEBSITE, Invoker, Sandbox, future, new_key, stored_record

MANY_REQUESTS = 20
# The session stack's worker picks a queued request up within a long poll or two.
QUEUED_DELIVERY_WAIT_SECONDS = 60


class OverBudget(AssertionError):
    """A count above its budget (only this may make the expected failure below pass)."""


@pytest.fixture(scope="module")
def workload() -> Workload:
    """New reschedules of one iClosed booking, each with its own key and start time."""
    return Workload("test")


@pytest.fixture
def relay_clients(relay_module: Any) -> tuple[Any, Any]:
    """The relay's own cached boto3 clients, the ones its handler uses (DynamoDB, Secrets Manager)."""
    from relay.dal import clients  # noqa: PLC0415 - importable once relay_module set the environment

    return clients.dynamodb(), clients.secretsmanager()


def _send(invoke: Invoker, reschedule: Reschedule, *, replayed: bool) -> None:
    answer = invoke(
        "POST", "/v1/reschedules", body=reschedule.body(), headers={"idempotency-key": reschedule.key}
    )
    assert answer.status == 200, answer.body
    assert answer.body["replayed"] is replayed


def test_a_new_reschedule_makes_at_most_two_dynamodb_round_trips(
    invoke: Invoker, relay_clients: tuple[Any, Any], workload: Workload, sandboxes: dict[str, Sandbox]
) -> None:
    dynamodb, _ = relay_clients
    with count_sends(dynamodb) as sends:
        _send(invoke, workload.next(), replayed=False)
    assert len(sandboxes[PROVIDER].calls()) == 1
    if len(sends) > MAX_DYNAMODB_CALLS_NEW:
        raise OverBudget(f"{len(sends)} DynamoDB round trips: {sends.operations}")


def test_a_replay_makes_one_dynamodb_round_trip(
    invoke: Invoker, relay_clients: tuple[Any, Any], workload: Workload, sandboxes: dict[str, Sandbox]
) -> None:
    # Given a reschedule that succeeded
    dynamodb, _ = relay_clients
    reschedule = workload.next()
    _send(invoke, reschedule, replayed=False)
    # When the same key comes again
    with count_sends(dynamodb) as sends:
        _send(invoke, reschedule, replayed=True)
    # Then the stored answer costs one round trip, and the provider is not called again
    assert len(sends) == DYNAMODB_CALLS_REPLAY, sends.operations
    assert len(sandboxes[PROVIDER].calls()) == 1


def test_warm_requests_do_not_call_secrets_manager(
    invoke: Invoker, relay_clients: tuple[Any, Any], workload: Workload, sandboxes: dict[str, Sandbox]
) -> None:
    _, secretsmanager = relay_clients
    # Given a container that has just served a request (its cached secrets are fresh from here on)
    _send(invoke, workload.next(), replayed=False)
    # When more new requests and a replay come
    with count_sends(secretsmanager) as sends:
        for _ in range(3):
            reschedule = workload.next()
            _send(invoke, reschedule, replayed=False)
        _send(invoke, reschedule, replayed=True)
    # Then none of them reaches Secrets Manager
    assert len(sends) == MAX_SECRETS_CALLS_WARM, sends.operations
    assert len(sandboxes[PROVIDER].calls()) == 4
    # (and the counter does see this client's calls)
    with count_sends(secretsmanager) as control:
        secretsmanager.get_secret_value(SecretId=f"{SECRETS_PREFIX}/sources")
    assert control.operations == ["GetSecretValue"]


def test_one_tcp_connection_to_a_provider_across_many_requests(
    invoke: Invoker, workload: Workload, stack: Stack, sandboxes: dict[str, Sandbox]
) -> None:
    with SandboxControl(stack.sandboxes[PROVIDER].url) as sandbox:
        sandbox.reset_stats()
        for _ in range(MANY_REQUESTS):
            _send(invoke, workload.next(), replayed=False)
        counted = sandbox.stats()
    assert counted["requests"] == MANY_REQUESTS
    assert counted["connections"] == MAX_CONNECTIONS_PER_PROVIDER


def test_a_sync_success_makes_no_sqs_call_and_queueing_makes_one(
    invoke: Invoker, relay_module: Any, workload: Workload, sandboxes: dict[str, Sandbox], stack: Stack
) -> None:
    from relay.dal import clients  # noqa: PLC0415 - importable once relay_module set the environment

    # A sync success: the queue is not touched
    with count_sends(clients.sqs()) as sqs_sends, count_sends(clients.dynamodb()) as dynamodb_sends:
        _send(invoke, workload.next(), replayed=False)
    assert sqs_sends.operations == []
    assert len(dynamodb_sends) <= MAX_DYNAMODB_CALLS_NEW, dynamodb_sends.operations
    # A queued request: two round trips in all, the send and one DynamoDB transaction (key and record)
    reschedule = workload.next()
    with count_sends(clients.sqs()) as sqs_sends, count_sends(clients.dynamodb()) as dynamodb_sends:
        answer = invoke(
            "POST",
            "/v1/reschedules",
            body=reschedule.body(),
            headers={"idempotency-key": reschedule.key, "prefer": "respond-async"},
        )
    assert answer.status == 202, answer.body
    assert sqs_sends.operations == ["SendMessage"]
    assert dynamodb_sends.operations == ["TransactWriteItems"]
    # The session's worker delivers it: wait, so its provider call does not land in a later test's log
    reschedule_id = answer.body["reschedule_id"]
    deadline = time.monotonic() + QUEUED_DELIVERY_WAIT_SECONDS
    while stored_record(stack, reschedule_id)["status"] == "queued" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stored_record(stack, reschedule_id)["status"] == "succeeded"


def test_a_sync_success_of_a_source_with_a_callback_makes_one_sqs_call(
    invoke: Invoker, relay_module: Any, stack: Stack, sandboxes: dict[str, Sandbox]
) -> None:
    from relay.dal import clients  # noqa: PLC0415 - importable once relay_module set the environment

    booking = stack.sandboxes["novacal"].bookings[4]
    body = {"provider": "novacal", "booking_id": booking, "start": future(days=400) + "Z"}
    with count_sends(clients.sqs()) as sqs_sends, count_sends(clients.dynamodb()) as dynamodb_sends:
        answer = invoke(
            "POST",
            "/v1/reschedules",
            body=body,
            headers={"idempotency-key": new_key()},
            key=WEBSITE.api_key,
        )
    assert answer.status == 200, answer.body
    # The outcome's callback event is queued (the worker POSTs it); the DynamoDB budget is unchanged.
    assert sqs_sends.operations == ["SendMessage"]
    assert len(dynamodb_sends) <= MAX_DYNAMODB_CALLS_NEW, dynamodb_sends.operations
