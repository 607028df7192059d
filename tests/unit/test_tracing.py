"""The doors' Tracer: without tracing the X-Ray SDK is never loaded; with it, the SDK traces as before."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from local.stack import CODE_DIR

# Builds a door's Tracer in a fresh interpreter, runs a traced handler once, reports what loaded.
_PROBE = """
import json, sys
from relay.tracing import NoTracing, door_tracer
tracer = door_tracer(patch_modules=["botocore"])

@tracer.capture_lambda_handler(capture_response=False)
def handler(event, context):
    return {"ok": event["n"] + 1}

failed = False
try:
    tracer.capture_lambda_handler(lambda event, context: 1 / 0)({}, None)
except ZeroDivisionError:
    failed = True
print(json.dumps({
    "answer": handler({"n": 1}, None),
    "error_raised": failed,
    "disabled": tracer.disabled,
    "no_tracing": isinstance(tracer.provider, NoTracing),
    "xray_core_loaded": "aws_xray_sdk.core" in sys.modules,
}))
"""


def _probe(**env: str) -> dict[str, object]:
    inherited = ("POWERTOOLS_", "AWS_XRAY", "_X_AMZN")  # the test's own tracing settings, not the probe's
    environ = {k: v for k, v in os.environ.items() if not k.startswith(inherited)}
    environ.pop("LAMBDA_TASK_ROOT", None)
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", _PROBE],
        env={**environ, "PYTHONPATH": str(CODE_DIR), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_disabled_tracing_never_loads_the_xray_sdk() -> None:
    result = _probe(LAMBDA_TASK_ROOT=str(CODE_DIR), POWERTOOLS_TRACE_DISABLED="true")
    assert result == {
        "answer": {"ok": 2},
        "error_raised": True,
        "disabled": True,
        "no_tracing": True,
        "xray_core_loaded": False,
    }


def test_outside_lambda_tracing_is_off_by_powertools_rule() -> None:
    result = _probe()  # no LAMBDA_TASK_ROOT: Powertools disables its Tracer
    assert result["disabled"] is True
    assert result["no_tracing"] is True
    assert result["xray_core_loaded"] is False


def test_active_tracing_uses_the_xray_sdk() -> None:
    # In Lambda without POWERTOOLS_TRACE_DISABLED (template.yaml's Tracing: Active); no daemon is needed
    # for the SDK to build segments (it sends UDP datagrams to a port nobody listens on).
    result = _probe(
        LAMBDA_TASK_ROOT=str(CODE_DIR),
        AWS_XRAY_DAEMON_ADDRESS="127.0.0.1:9",
        _X_AMZN_TRACE_ID="Root=1-00000000-000000000000000000000001;Parent=0000000000000001;Sampled=1",
    )
    assert result["disabled"] is False
    assert result["no_tracing"] is False
    assert result["xray_core_loaded"] is True
    assert result["answer"] == {"ok": 2}
    assert result["error_raised"] is True
