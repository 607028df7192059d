"""Faults every sandbox shares: status answers, delays, dropped connections (before or after the change)."""

from __future__ import annotations

import time

import httpx
import pytest

from local.sandbox import PROVIDERS, SandboxProvider, start_sandbox
from tests.local.sandbox.helpers import (
    HTTP,
    SUCCESS_STATUS,
    TIMEOUT,
    TOKENS,
    arm_fault,
    assert_provider_error,
    calls,
    send_valid,
    snapshot,
    stats,
)


def test_status_fault_counts_down_and_sends_retry_after(sandbox: SandboxProvider) -> None:
    # Given a fault for the next two calls
    arm_fault(sandbox, status=503, times=2, retry_after=1)

    # When three calls arrive
    first, second, third = (send_valid(sandbox) for _ in range(3))

    # Then two fail in the provider's own error shape and the third goes through
    for failed in (first, second):
        assert failed.status_code == 503
        assert failed.headers["retry-after"] == "1"
        assert_provider_error(sandbox, failed, "Service Unavailable")
    assert third.status_code == SUCCESS_STATUS[sandbox.name]
    assert "retry-after" not in third.headers
    assert HTTP.get(f"{sandbox.url}/_sandbox/faults").json() == {"fault": None, "remaining": 0}
    assert len(calls(sandbox)) == 3


def test_status_fault_without_retry_after_sends_no_retry_after(sandbox: SandboxProvider) -> None:
    arm_fault(sandbox, status=502)
    response = send_valid(sandbox)
    assert response.status_code == 502
    assert "retry-after" not in response.headers
    assert_provider_error(sandbox, response, "Bad Gateway")


def test_delay_only_fault_delays_then_answers_normally(sandbox: SandboxProvider) -> None:
    arm_fault(sandbox, delay_ms=400)
    started = time.monotonic()
    response = send_valid(sandbox)
    elapsed = time.monotonic() - started
    assert response.status_code == SUCCESS_STATUS[sandbox.name]
    assert elapsed >= 0.4
    assert HTTP.get(f"{sandbox.url}/_sandbox/faults").json()["fault"] is None


def test_drop_connection_fault_gives_the_client_a_connection_error(sandbox: SandboxProvider) -> None:
    arm_fault(sandbox, drop_connection=True)
    with pytest.raises(httpx.TransportError):
        send_valid(sandbox)
    assert len(calls(sandbox)) == 1
    assert send_valid(sandbox).status_code == SUCCESS_STATUS[sandbox.name]


def test_drop_connection_on_a_kept_alive_connection(sandbox: SandboxProvider) -> None:
    with httpx.Client(base_url=sandbox.url, timeout=TIMEOUT) as client:
        assert send_valid(sandbox, client).status_code == SUCCESS_STATUS[sandbox.name]
        arm_fault(sandbox, drop_connection=True)
        with pytest.raises(httpx.TransportError):
            send_valid(sandbox, client)
        assert send_valid(sandbox, client).status_code == SUCCESS_STATUS[sandbox.name]
    assert stats(sandbox)["connections"] == 2


def test_cleared_fault_no_longer_fires(sandbox: SandboxProvider) -> None:
    arm_fault(sandbox, status=500, times=5)
    assert HTTP.delete(f"{sandbox.url}/_sandbox/faults").status_code == 204
    assert send_valid(sandbox).status_code == SUCCESS_STATUS[sandbox.name]


def test_new_fault_replaces_the_pending_one(sandbox: SandboxProvider) -> None:
    arm_fault(sandbox, status=500, times=5)
    arm_fault(sandbox, status=504)
    assert send_valid(sandbox).status_code == 504
    assert send_valid(sandbox).status_code == SUCCESS_STATUS[sandbox.name]


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"status": "503"}',
        '{"status": 200}',
        '{"status": 700}',
        '{"times": 0}',
        '{"times": true}',
        '{"times": null}',
        '{"delay_ms": -1}',
        '{"delay_ms": 1.5}',
        '{"retry_after": 1.5}',
        '{"retry_after": -1}',
        '{"drop_connection": "yes"}',
        '{"surprise": 1}',
        '{"after_commit": true}',
        '{"after_commit": "yes", "drop_connection": true}',
        '{"after_commit": true, "drop_connection": true, "status": 500}',
        '{"commit_delay_ms": -1}',
        '{"commit_delay_ms": 60001}',
        '{"commit_delay_ms": 100, "status": 503}',
        '{"commit_delay_ms": 100, "drop_connection": true}',
    ],
)
def test_fault_switch_rejects_junk(sandbox: SandboxProvider, content: str) -> None:
    response = HTTP.post(f"{sandbox.url}/_sandbox/faults", content=content)
    assert response.status_code == 400
    assert isinstance(response.json()["error"], str)
    assert HTTP.get(f"{sandbox.url}/_sandbox/faults").json()["fault"] is None


@pytest.mark.parametrize("name", PROVIDERS)
def test_after_commit_drop_applies_the_move_then_hangs_up(name: str) -> None:
    # Given a fresh sandbox (seeded state) with an after-commit drop armed for one call
    with start_sandbox(name, token=TOKENS[name]) as fresh:
        before = snapshot(fresh)
        arm_fault(fresh, drop_connection=True, after_commit=True, times=1)

        # When a valid move is sent, the client gets no answer at all
        with pytest.raises(httpx.TransportError):
            send_valid(fresh)

        # Then the move happened anyway (the unknown outcome), and the next call is answered normally
        assert snapshot(fresh) != before
        assert len(calls(fresh)) == 1
        assert HTTP.get(f"{fresh.url}/_sandbox/faults").json() == {"fault": None, "remaining": 0}
        assert send_valid(fresh).status_code == SUCCESS_STATUS[name]


@pytest.mark.parametrize("name", PROVIDERS)
def test_plain_drop_leaves_the_booking_alone(name: str) -> None:
    with start_sandbox(name, token=TOKENS[name]) as fresh:
        before = snapshot(fresh)
        arm_fault(fresh, drop_connection=True)
        with pytest.raises(httpx.TransportError):
            send_valid(fresh)
        assert snapshot(fresh) == before


def test_after_commit_fault_is_reported_while_pending(sandbox: SandboxProvider) -> None:
    arm_fault(sandbox, drop_connection=True, after_commit=True, times=2)
    described = HTTP.get(f"{sandbox.url}/_sandbox/faults").json()
    assert described["remaining"] == 2
    assert described["fault"]["after_commit"] is True
    assert described["fault"]["drop_connection"] is True
