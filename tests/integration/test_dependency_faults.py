"""Faults of the relay's own dependencies: Secrets Manager and DynamoDB stopping, and a Lambda that
dies mid-call. Each test has its own stack, because it stops parts of it."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from local.stack import TABLE_NAMES, Stack, start_stack
from relay.callers.admission import identify
from relay.callers.registry import Caller
from relay.composition import Relay, build
from relay.dal.clients import new_client
from relay.deadline import Deadline
from relay.errors import RelayError
from relay.reschedule.normalise import command_from
from relay.settings import settings_from
from tests.helpers import ZAPIER, Sandbox, future, lambda_context, new_key

AUTH = {"authorization": f"Bearer {ZAPIER.api_key}"}


@pytest.fixture
def own_stack() -> Iterator[Stack]:
    with start_stack(api_port=None) as stack:
        yield stack


def _service(stack: Stack) -> Relay:
    settings = settings_from(stack.env)
    options = {"region_name": "us-east-1", "aws_access_key_id": "sandbox", "aws_secret_access_key": "sandbox"}
    return build(
        settings,
        dynamodb=new_client("dynamodb", endpoint_url=stack.dynamodb.endpoint, **options),
        secretsmanager=new_client("secretsmanager", endpoint_url=stack.secrets.endpoint, **options),
    )


def _sandbox(stack: Stack, name: str) -> Sandbox:
    sb = stack.sandboxes[name]
    return Sandbox(sb.url, list(sb.bookings))


def _reschedule(relay: Relay, caller: Caller, fields: dict[str, Any]) -> dict[str, Any]:
    """What the HTTP door does with an admitted request."""
    command = command_from(fields, allowed_providers=caller.allowed_providers, settings=relay.settings)
    deadline = Deadline.for_invocation(lambda_context(), relay.settings.deadline_safety_margin_seconds)
    return relay.service.reschedule(command, source=caller.name, idempotency_key=new_key(), deadline=deadline)


def _records(stack: Stack) -> list[dict[str, Any]]:
    items = stack.client("dynamodb").scan(TableName=TABLE_NAMES["ReschedulesTable"])["Items"]
    return [{k: next(iter(v.values())) for k, v in item.items()} for item in items]


def test_secrets_manager_down_on_a_cold_container_is_503_without_provider_call(own_stack: Stack) -> None:
    service = _service(own_stack)
    own_stack.secrets.stop()
    with pytest.raises(RelayError) as caught:
        identify(service.sources.current(), AUTH, now=time.time())
    assert (caught.value.status, caught.value.code, caught.value.retry_after) == (
        503,
        "secrets_unavailable",
        5,
    )
    assert _sandbox(own_stack, "iclosed").calls() == []


def test_secrets_manager_down_for_an_uncached_token_is_503_and_recorded(own_stack: Stack) -> None:
    service = _service(own_stack)
    caller = identify(service.sources.current(), AUTH, now=time.time())
    _reschedule(
        service, caller, {"provider": "iclosed", "id": 1001, "start": future(days=80), "timezone": "UTC"}
    )
    own_stack.secrets.stop()  # the registry and iClosed's token are cached; NovaCal's token is not
    novacal = _sandbox(own_stack, "novacal")
    with pytest.raises(RelayError) as caught:
        _reschedule(
            service,
            identify(service.sources.current(), AUTH, now=time.time()),
            {"provider": "novacal", "booking_id": novacal.bookings[0], "start": future(days=80) + "Z"},
        )
    assert (caught.value.status, caught.value.code) == (503, "secrets_unavailable")
    assert novacal.calls() == []
    failed = [r for r in _records(own_stack) if r["status"] == "failed"]
    assert [(r["reason"], r["provider"]) for r in failed] == [("secrets_unavailable", "novacal")]


def test_dynamodb_down_before_the_provider_call_is_503_without_provider_call(own_stack: Stack) -> None:
    service = _service(own_stack)
    caller = identify(service.sources.current(), AUTH, now=time.time())
    own_stack.dynamodb.stop()
    with pytest.raises(RelayError) as caught:
        _reschedule(
            service, caller, {"provider": "iclosed", "id": 1002, "start": future(days=81), "timezone": "UTC"}
        )
    assert (caught.value.status, caught.value.code, caught.value.retry_after) == (
        503,
        "storage_unavailable",
        2,
    )
    assert _sandbox(own_stack, "iclosed").calls() == []


PROVIDER_CALL_WAIT_SECONDS = 20


def _stop_when_called(provider: Sandbox, stack: Stack) -> None:
    waited_until = time.monotonic() + PROVIDER_CALL_WAIT_SECONDS
    while not provider.calls() and time.monotonic() < waited_until:
        time.sleep(0.05)
    stack.dynamodb.stop()


def test_provider_success_then_storage_failure_still_answers_success_and_logs_the_outcome(
    own_stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    service = _service(own_stack)
    caller = identify(service.sources.current(), AUTH, now=time.time())
    iclosed = _sandbox(own_stack, "iclosed")
    iclosed.fault(delay_ms=1500, times=1)
    # DynamoDB goes away while the provider is working: after the lock, before the outcome is stored
    # (once the provider has the call, not after a fixed time: a loaded machine may take the lock late)
    threading.Thread(target=_stop_when_called, args=(iclosed, own_stack), daemon=True).start()
    result = _reschedule(
        service, caller, {"provider": "iclosed", "id": 1003, "start": future(days=82), "timezone": "UTC"}
    )
    assert result["status"] == "succeeded"
    assert len(iclosed.calls()) == 1
    lost = [
        r
        for r in caplog.records
        if r.levelname == "ERROR" and r.getMessage() == "reschedule attempt NOT recorded"
    ]
    assert [(r.outcome["reschedule_id"], r.outcome["status"]) for r in lost] == [  # type: ignore[attr-defined]
        (result["reschedule_id"], "succeeded")
    ]


def _wait_for_call(provider: Sandbox) -> None:
    waited_until = time.monotonic() + PROVIDER_CALL_WAIT_SECONDS
    while not provider.calls() and time.monotonic() < waited_until:
        time.sleep(0.05)


def _in_progress_expiry(stack: Stack) -> float:
    """When the one in-progress lock in the idempotency table expires (Unix seconds)."""
    items = stack.client("dynamodb").scan(TableName=TABLE_NAMES["IdempotencyTable"])["Items"]
    locks = [item for item in items if item.get("status", {}).get("S") == "INPROGRESS"]
    assert len(locks) == 1, locks
    return int(locks[0]["in_progress_expiration"]["N"]) / 1000


def test_a_lambda_that_dies_mid_call_leaves_a_lock_that_expires_with_its_remaining_time() -> None:
    # The emulator gives each invocation 6 s; the worker is killed while the provider is still working.
    with start_stack(api_port=0, workers=2, api_timeout_s=6) as stack:
        assert stack.api is not None
        url = f"{stack.api.url}/v1/reschedules"
        iclosed = _sandbox(stack, "iclosed")
        iclosed.fault(delay_ms=3000, times=1)
        body = {"provider": "iclosed", "id": 1004, "start": future(days=83), "timezone": "UTC"}
        headers = AUTH | {"idempotency-key": new_key()}
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(httpx.post, url, json=body, headers=headers, timeout=30)
            _wait_for_call(iclosed)  # the lock is taken and the provider is working
            for pid in stack.api.worker_pids():
                os.kill(pid, signal.SIGKILL)
            assert first.result().status_code >= 500  # the gateway's answer for a crashed function
        # The lock lives until the dead invocation's time would have run out, not longer
        expires_at = _in_progress_expiry(stack)
        assert 0 < expires_at - time.time() <= 6
        # While the dead invocation's time has not run out, the key is still taken
        assert httpx.post(url, json=body, headers=headers, timeout=30).status_code == 409
        time.sleep(max(0.0, expires_at - time.time() + 0.5))
        retried = httpx.post(url, json=body, headers=headers, timeout=30)
        assert retried.status_code == 200, retried.text
        assert len(iclosed.calls()) == 2  # the same PUT again: safe, it moves the booking to the same time
