"""SnapStart: the after-restore hooks make what must be unique anew (docs/performance.md).

The hooks run in a fresh process (tests/fixtures/snapstart_restore.py), as the runtime runs them
after a restore, against the local stack: the provider's TCP counter, botocore's send events and
the `random` state show what the first request after the restore used.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from local.stack import Stack

REPO = Path(__file__).resolve().parents[2]
CHILD = REPO / "tests" / "fixtures" / "snapstart_restore.py"
CHILD_TIMEOUT_SECONDS = 120


@pytest.fixture(scope="module")
def restore(stack: Stack) -> dict[str, Any]:
    env = {
        **os.environ,
        **stack.env,
        "PYTHONPATH": os.pathsep.join([str(REPO / "functions" / "reschedule"), str(REPO)]),
    }
    done = subprocess.run(  # noqa: S603 - our own interpreter and fixture
        [sys.executable, str(CHILD), stack.sandboxes["iclosed"].url],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_SECONDS,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_the_handler_registers_its_after_restore_hook(restore: dict[str, Any]) -> None:
    assert restore["hooks"] == 1


def test_no_registry_read_is_under_way_when_the_snapshot_is_taken(restore: dict[str, Any]) -> None:
    assert restore["before_snapshot_hooks"] == 1
    assert restore["prefetch_settled_before_snapshot"] is True


def test_before_a_restore_warm_requests_reuse_everything(restore: dict[str, Any]) -> None:
    # The baseline the restore must break: one kept-alive connection, cached secrets, same clients.
    assert restore["before"] == {
        "accepted_connections": 0,
        "dynamodb_sends": 2,
        "secrets_sends": 0,
        "old_client_sends": 2,  # the old clients are still the current ones
        "new_clients": False,
        "queue_available": True,
    }


def test_after_a_restore_the_provider_gets_a_new_connection(restore: dict[str, Any]) -> None:
    assert restore["after"]["accepted_connections"] == 1


def test_after_a_restore_new_aws_clients_carry_every_call(restore: dict[str, Any]) -> None:
    after = restore["after"]

    assert after["new_clients"] is True
    assert after["queue_available"] is True  # the rebuilt relay has its SQS client too
    assert after["old_client_sends"] == 0
    assert after["dynamodb_sends"] == 2


def test_after_a_restore_cached_secrets_are_read_again(restore: dict[str, Any]) -> None:
    # The sources registry and the provider token, both cached before the snapshot.
    assert restore["after"]["secrets_sends"] == 2


def test_after_a_restore_randomness_is_fresh(restore: dict[str, Any]) -> None:
    assert restore["random_repeats_the_snapshot"] is False
