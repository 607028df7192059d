"""Warm requests: runs `bench.container` (one Lambda-like container) against the stack, for the relay
(with the floors) and for the peer (from its read-only tree, bench.artifacts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.lambda_env import run_container_child
from bench.workload import PROVIDER
from local.stack import CODE_DIR, TABLE_NAMES, Stack

# The whole warm phase takes well under a minute here; beyond this it is stuck.
CONTAINER_TIMEOUT_SECONDS = 600.0


def run_container(
    stack: Stack,
    *,
    iterations: int,
    warmup: int,
    block: int,
    delay_ms: int,
    connection_requests: int,
    peer: Path | None = None,
) -> dict[str, Any]:
    """The relay's container, or with `peer` (the peer's function tree) the peer's."""
    spec = {
        "implementation": "relay" if peer is None else "peer",
        "provider_url": stack.sandboxes[PROVIDER].url,
        "floor_table": TABLE_NAMES["IdempotencyTable"],
        "iterations": iterations,
        "warmup": warmup,
        "block": block,
        "delay_ms": delay_ms,
        "connection_requests": connection_requests,
    }
    result, stderr = run_container_child(
        stack,
        "bench.container",
        spec,
        timeout_s=CONTAINER_TIMEOUT_SECONDS,
        what="warm container" if peer is None else "the peer's warm container",
        code_dir=CODE_DIR if peer is None else peer,
    )
    result["stderr_lines"] = [line for line in stderr.splitlines() if line.strip()]
    return result
