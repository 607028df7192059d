"""Warm requests: runs `bench.container` (one Lambda-like container) against the stack."""

from __future__ import annotations

from typing import Any

from bench.lambda_env import run_container_child
from bench.workload import PROVIDER
from local.stack import TABLE_NAMES, Stack

# The whole warm phase takes well under a minute here; beyond this it is stuck.
CONTAINER_TIMEOUT_SECONDS = 600.0


def run_container(
    stack: Stack, *, iterations: int, warmup: int, block: int, delay_ms: int, connection_requests: int
) -> dict[str, Any]:
    spec = {
        "provider_url": stack.sandboxes[PROVIDER].url,
        "floor_table": TABLE_NAMES["IdempotencyTable"],
        "iterations": iterations,
        "warmup": warmup,
        "block": block,
        "delay_ms": delay_ms,
        "connection_requests": connection_requests,
    }
    result, stderr = run_container_child(
        stack, "bench.container", spec, timeout_s=CONTAINER_TIMEOUT_SECONDS, what="warm container"
    )
    result["stderr_lines"] = [line for line in stderr.splitlines() if line.strip()]
    return result
