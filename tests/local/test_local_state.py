"""`make run` across restarts and `make reset`: the quick-start example does what the docs say after
a restart (no replay from the previous run's idempotency record), the attempt history and the
sandboxes' bookings are kept, and reset deletes the local state but never a running stack's."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from local.seed import ZAPIER_DEMO
from local.stack import STATE_ENTRIES, Stack, StackRunning, reset_state, start_stack

API_KEY = ZAPIER_DEMO.api_key
# The quick-start example's explicit key, sent again after the restart.
QUICK_START_KEY = "demo-1"


def quick_start(stack: Stack) -> httpx.Response:
    """The first `make run` example: an iClosed booking moved with `Idempotency-Key: demo-1`."""
    assert stack.api is not None
    day = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()
    body: dict[str, Any] = {
        "provider": "iclosed",
        "booking_id": int(stack.sandboxes["iclosed"].bookings[0]),
        "start": f"{day}T10:00:00",
        "timezone": "America/New_York",
    }
    headers = {"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": QUICK_START_KEY}
    return httpx.post(f"{stack.api.url}/v1/reschedules", json=body, headers=headers, timeout=30)


def provider_calls(stack: Stack) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = httpx.get(f"{stack.sandboxes['iclosed'].url}/_sandbox/calls").json()
    return calls


def restarted(state_dir: Path) -> Stack:
    return start_stack(persist=True, state_dir=state_dir, api_port=0, workers=1, forget_idempotency=True)


def test_after_a_restart_the_quick_start_example_moves_the_booking_again(tmp_path: Path) -> None:
    # Given a first run that moved the booking
    with restarted(tmp_path) as first:
        before = quick_start(first)
        assert before.status_code == 200, before.text
        assert before.json()["replayed"] is False
        first_id = before.json()["reschedule_id"]

    # When the stack restarts (the sandbox keeps the moved booking) and the same example is sent
    with restarted(tmp_path) as second:
        after = quick_start(second)

        # Then it runs: one provider call, a fresh answer, and the first attempt is still on record
        assert after.status_code == 200, after.text
        assert after.json()["replayed"] is False
        assert after.json()["reschedule_id"] != first_id
        assert len(provider_calls(second)) == 1
        assert second.forgotten_idempotency_records >= 1
        assert second.api is not None
        history = httpx.get(
            f"{second.api.url}/v1/reschedules/{first_id}",
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=30,
        )
        assert history.status_code == 200, history.text


def state_dir_with_everything(tmp_path: Path, api_url: str) -> Path:
    (tmp_path / "dynamodb-data").mkdir()
    (tmp_path / "dynamodb-data" / "shared-local-instance.db").write_bytes(b"sandbox")
    (tmp_path / "sandboxes").mkdir()
    (tmp_path / "sandboxes" / "calcom.json").write_text("{}")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "moto-1.log").write_text("sandbox log\n")
    (tmp_path / "stack.json").write_text(json.dumps({"api_url": api_url, "dynamodb_endpoint": None}))
    (tmp_path / "npm").mkdir()  # a download, not state
    return tmp_path


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_reset_deletes_the_state_and_keeps_downloads(tmp_path: Path) -> None:
    state_dir = state_dir_with_everything(tmp_path, closed_port_url())

    removed = reset_state(state_dir)

    assert sorted(path.name for path in removed) == sorted(STATE_ENTRIES)
    assert not any((state_dir / name).exists() for name in STATE_ENTRIES)
    assert (state_dir / "npm").is_dir()
    assert reset_state(state_dir) == []  # nothing left: a second reset is a no-op


def test_reset_refuses_while_the_stack_runs(tmp_path: Path) -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        state_dir = state_dir_with_everything(tmp_path, f"http://127.0.0.1:{listening.getsockname()[1]}")

        with pytest.raises(StackRunning):
            reset_state(state_dir)

    assert (state_dir / "dynamodb-data" / "shared-local-instance.db").exists()
