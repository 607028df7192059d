"""Warm requests: runs `bench.container` (one Lambda-like container) against the stack."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

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
    with tempfile.TemporaryDirectory(prefix="bench-warm-") as tmp:
        result_path = Path(tmp) / "result.json"
        done = subprocess.run(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "bench.container", str(result_path)],
            input=json.dumps(spec),
            stdout=subprocess.DEVNULL,  # the relay's JSON logs
            stderr=subprocess.PIPE,
            text=True,
            cwd=CODE_DIR,
            env=env,
            timeout=CONTAINER_TIMEOUT_SECONDS,
            check=False,
        )
        if done.returncode != 0 or not result_path.exists():
            raise RuntimeError(f"warm container failed ({done.returncode}):\n{done.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(result_path.read_text())
    result["stderr_lines"] = [line for line in done.stderr.splitlines() if line.strip()]
    return result
