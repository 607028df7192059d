"""The Lambda environment, described once: the function's name, memory size and timeouts (memory and
timeouts read from template.yaml, so the bench runs what is deployed), and the environment of a
Lambda-like process: what Lambda sets, plus the relay's own settings."""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.child import run_json_child
from local.stack import CODE_DIR, REGION, WORKER_FUNCTION, Stack
from local.template import (
    REPO_ROOT,
    TEMPLATE_PATH,
    function_memory_mb,
    function_timeout_seconds,
    load_template,
)

_TEMPLATE = load_template(TEMPLATE_PATH)
FUNCTION_NAME = "reschedule-relay-bench"
FUNCTION_MEMORY_MB = function_memory_mb(_TEMPLATE)  # Globals' MemorySize (both functions)
FUNCTION_TIMEOUT_SECONDS = function_timeout_seconds(_TEMPLATE)  # a context's deadline counts down from it
WORKER_TIMEOUT_SECONDS = int(_TEMPLATE["Resources"][WORKER_FUNCTION]["Properties"]["Timeout"])

# Passed through from the bench's own environment so the interpreter and tools behave.
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL")


def lambda_environment(relay_env: Mapping[str, str], *, tracing: bool, xray_daemon: str) -> dict[str, str]:
    """`relay_env` is the stack's relay environment (`Stack.env`).

    With `tracing`, POWERTOOLS_TRACE_DISABLED is dropped (template.yaml sets `Tracing: Active` and
    does not disable the Tracer) and a sampled X-Ray trace header is set, as Lambda does per
    invocation; the Tracer then sends segments over UDP to `xray_daemon` (a local sink).
    """
    env = {name: os.environ[name] for name in _INHERITED if name in os.environ}
    env |= {
        "LAMBDA_TASK_ROOT": str(CODE_DIR),
        "AWS_LAMBDA_FUNCTION_NAME": FUNCTION_NAME,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(FUNCTION_MEMORY_MB),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{FUNCTION_NAME}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"{time.strftime('%Y/%m/%d')}/[$LATEST]bench",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_XRAY_DAEMON_ADDRESS": xray_daemon,
        "TZ": ":UTC",
        # The bench's child modules live at the repository root; the code dir is the working directory.
        "PYTHONPATH": str(REPO_ROOT),
    }
    env |= relay_env
    if tracing:
        env.pop("POWERTOOLS_TRACE_DISABLED", None)
        root = f"1-{int(time.time()):08x}-{secrets.token_hex(12)}"
        env["_X_AMZN_TRACE_ID"] = f"Root={root};Parent={secrets.token_hex(8)};Sampled=1"
    return env


def run_container_child(
    stack: Stack,
    module: str,
    spec: Mapping[str, Any],
    *,
    timeout_s: float,
    what: str,
    code_dir: Path = CODE_DIR,
) -> tuple[dict[str, Any], str]:
    """`python -m module` as one Lambda-like container on `stack`: the stack's environment as is (the
    Tracer stays disabled: no X-Ray daemon), the function's code (`code_dir`: the relay's, or the
    peer's tree) as working directory and first on the path."""
    env = lambda_environment(stack.env, tracing=False, xray_daemon="127.0.0.1:2000")
    env["LAMBDA_TASK_ROOT"] = str(code_dir)
    env["PYTHONPATH"] = os.pathsep.join([str(code_dir), env["PYTHONPATH"]])
    return run_json_child(
        [sys.executable, "-m", module], spec, env=env, cwd=code_dir, timeout_s=timeout_s, what=what
    )
