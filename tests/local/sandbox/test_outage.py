"""The outage switch: every provider call fails one way for a while, then the provider is back."""

from __future__ import annotations

import time

import pytest

from local.sandbox import SandboxProvider
from tests.local.sandbox.helpers import (
    HTTP,
    SUCCESS_STATUS,
    arm_fault,
    assert_provider_error,
    calls,
    control,
    send_valid,
    snapshot,
)

SHORT_OUTAGE_SECONDS = 0.6


def outage(provider: SandboxProvider) -> dict[str, object]:
    response = control(provider, "GET", "outage")
    assert response.status_code == 200
    described: dict[str, object] = response.json()
    return described


def test_outage_fails_every_call_then_ends_by_itself(sandbox: SandboxProvider) -> None:
    # Given an outage of a little over half a second
    before = snapshot(sandbox)
    assert control(sandbox, "POST", "outage", seconds=SHORT_OUTAGE_SECONDS, status=503).status_code == 204

    # When calls arrive during it, every one fails in the provider's shape and changes nothing
    failed = [send_valid(sandbox) for _ in range(3)]
    assert [response.status_code for response in failed] == [503] * 3
    for response in failed:
        assert_provider_error(sandbox, response, "Service Unavailable")
        assert "retry-after" not in response.headers
    assert snapshot(sandbox) == before
    assert len(calls(sandbox)) == 3  # they still reached the sandbox and are logged
    described = outage(sandbox)
    assert described["active"] is True
    assert described["status"] == 503
    assert described["failed"] == 3
    assert 0 < float(str(described["remaining_seconds"])) <= SHORT_OUTAGE_SECONDS

    # Then, once it is over, the provider answers again
    time.sleep(SHORT_OUTAGE_SECONDS + 0.1)
    assert send_valid(sandbox).status_code == SUCCESS_STATUS[sandbox.name]
    assert outage(sandbox)["active"] is False


def test_delete_ends_the_outage_at_once(sandbox: SandboxProvider) -> None:
    assert control(sandbox, "POST", "outage", seconds=600).status_code == 204
    assert send_valid(sandbox).status_code == 503  # 503 is the default status
    assert control(sandbox, "DELETE", "outage").status_code == 204
    assert send_valid(sandbox).status_code == SUCCESS_STATUS[sandbox.name]
    assert outage(sandbox)["active"] is False


def test_outage_status_and_retry_after_are_chosen(sandbox: SandboxProvider) -> None:
    assert control(sandbox, "POST", "outage", seconds=600, status=502, retry_after=9).status_code == 204
    response = send_valid(sandbox)
    assert response.status_code == 502
    assert response.headers["retry-after"] == "9"
    assert_provider_error(sandbox, response, "Bad Gateway")


def test_outage_leaves_a_pending_fault_for_afterwards(sandbox: SandboxProvider) -> None:
    arm_fault(sandbox, status=500)
    assert control(sandbox, "POST", "outage", seconds=600).status_code == 204
    assert send_valid(sandbox).status_code == 503
    assert control(sandbox, "DELETE", "outage").status_code == 204
    assert send_valid(sandbox).status_code == 500  # the fault was not used up by the outage
    assert send_valid(sandbox).status_code == SUCCESS_STATUS[sandbox.name]


def test_control_routes_keep_working_during_an_outage(sandbox: SandboxProvider) -> None:
    assert control(sandbox, "POST", "outage", seconds=600).status_code == 204
    assert HTTP.get(f"{sandbox.url}/_sandbox/bookings").status_code == 200
    assert HTTP.get(f"{sandbox.url}/_sandbox/stats").status_code == 200


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        "{}",
        '{"seconds": 0}',
        '{"seconds": -1}',
        '{"seconds": true}',
        '{"seconds": "5"}',
        '{"seconds": 100000}',
        '{"seconds": 5, "status": 200}',
        '{"seconds": 5, "status": "503"}',
        '{"seconds": 5, "retry_after": -1}',
        '{"seconds": 5, "retry_after": 1.5}',
        '{"seconds": 5, "surprise": 1}',
    ],
)
def test_outage_switch_rejects_junk(sandbox: SandboxProvider, content: str) -> None:
    response = HTTP.post(f"{sandbox.url}/_sandbox/outage", content=content)
    assert response.status_code == 400
    assert isinstance(response.json()["error"], str)
    assert outage(sandbox)["active"] is False
