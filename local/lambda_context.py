"""The context object Lambda's Python runtime passes to a handler, rebuilt for local runs.

Mirrors ``awslambdaric``'s ``LambdaContext``: the same attribute names, the same types (the
runtime reads ``memory_limit_in_mb`` and ``function_version`` from environment variables, so
they are strings), and a remaining time that counts down to an absolute deadline in epoch ms.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"


@dataclass
class LambdaContext:
    aws_request_id: str
    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: str
    log_group_name: str
    log_stream_name: str
    deadline_ms: int
    client_context: Any = None
    identity: Any = None
    tenant_id: str | None = field(default=None)

    def get_remaining_time_in_millis(self) -> int:
        return max(self.deadline_ms - int(time.time() * 1000), 0)


def function_arn(function_name: str, region: str) -> str:
    return f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{function_name}"


def invocation_context(
    *,
    timeout_seconds: float,
    function_name: str = "reschedule-relay-local",
    memory_mb: int = 1024,
    region: str = DEFAULT_REGION,
    log_stream_name: str = "local",
) -> LambdaContext:
    """A context for calling the handler in-process (tests, bench, timing), `timeout_seconds` left."""
    return LambdaContext(
        aws_request_id=str(uuid.uuid4()),
        function_name=function_name,
        function_version="$LATEST",
        invoked_function_arn=function_arn(function_name, region),
        memory_limit_in_mb=str(memory_mb),
        log_group_name=f"/aws/lambda/{function_name}",
        log_stream_name=log_stream_name,
        deadline_ms=int(time.time() * 1000 + timeout_seconds * 1000),
    )
