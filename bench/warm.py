"""Warm requests: runs `bench.container` (one Lambda-like container) against the stack."""

from __future__ import annotations

import sys
from typing import Any

from bench.child import run_json_child
from bench.lambda_env import lambda_environment
from bench.workload import PROVIDER
from local.stack import CODE_DIR, TABLE_NAMES, Stack

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
    # The stack's environment as is: the Tracer stays disabled here (no X-Ray daemon).
    env = lambda_environment(stack.env, tracing=False, xray_daemon="127.0.0.1:2000")
    result, stderr = run_json_child(
        [sys.executable, "-m", "bench.container"],
        spec,
        env=env,
        cwd=CODE_DIR,
        timeout_s=CONTAINER_TIMEOUT_SECONDS,
        what="warm container",
    )
    result["stderr_lines"] = [line for line in stderr.splitlines() if line.strip()]
    return result
