"""The inputs of README "What it costs": warm handler time, log bytes per call, stored item sizes.

    python -m bench.costs            # 200 new reschedules, 200 replays, 200 lookups
    python -m bench.costs -n 500

Also times a cold start's imports (``import app`` in a fresh interpreter, tracer on, as in Lambda)
twice: with every module's bytecode cached, and with none (the layer ships no .pyc, so Lambda
compiles it at each cold start; the runtime's boto3 has its bytecode, so Lambda sits in between).

Each request is one ``lambda_handler`` call with an HTTP API v2 event, as Lambda would make it,
after warm-up calls (so this is the warm path, not a cold start). Wall time includes DynamoDB Local
and the Secrets Manager emulator over loopback and the sandbox provider's answer (~1 ms, local);
CPU is the calling thread's own CPU time (the sandboxes run in other threads). Output lines
(Powertools JSON logs and EMF metrics) are counted too: CloudWatch Logs bills them by the byte.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from local.emulator import build_event
from local.lambda_context import LambdaContext, invocation_context
from local.seed import ZAPIER_DEMO
from local.stack import CODE_DIR, TABLE_NAMES, start_stack

WARM_UP_CALLS = 20
COLD_IMPORT_RUNS = 3
_COLD_IMPORT = (
    "import resource, app; usage = resource.getrusage(resource.RUSAGE_SELF); "
    "print(usage.ru_utime + usage.ru_stime)"
)
DEFAULT_CALLS = 200
TIMEOUT_SECONDS = 25


@dataclass
class Timing:
    label: str
    wall_ms: list[float]
    cpu_ms: list[float]
    output_lines: int
    output_bytes: int

    def row(self) -> str:
        n = len(self.wall_ms)
        wall = sorted(self.wall_ms)
        return (
            f"{self.label:<16} n={n:<4} wall median {statistics.median(wall):6.1f} ms"
            f"  p90 {wall[int(0.9 * (n - 1))]:6.1f} ms  p99 {wall[int(0.99 * (n - 1))]:6.1f} ms"
            f"  | cpu median {statistics.median(self.cpu_ms):5.1f} ms"
            f"  | stdout {self.output_lines / n:.1f} lines, {self.output_bytes / n:.0f} B per call"
        )


@contextlib.contextmanager
def _captured_stdout() -> Iterator[list[bytes]]:
    """Collect everything written to file descriptor 1 (logs and EMF lines) while the block runs."""
    captured: list[bytes] = []
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        try:
            yield captured
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
            sink.seek(0)
            captured.append(sink.read())


def _context() -> LambdaContext:
    return invocation_context(timeout_seconds=TIMEOUT_SECONDS)


def _event(
    method: str, path: str, api_key: str, body: dict[str, Any] | None, key: str | None
) -> dict[str, Any]:
    headers = [("authorization", f"Bearer {api_key}")]
    raw = b""
    if body is not None:
        headers.append(("content-type", "application/json"))
        raw = json.dumps(body).encode()
    if key is not None:
        headers.append(("idempotency-key", key))
    route = "GET /v1/reschedules/{reschedule_id}" if method == "GET" else f"{method} {path}"
    return build_event(method=method, raw_path=path, raw_query="", headers=headers, body=raw, route_key=route)


def _measure(label: str, handler: Callable[..., Any], events: list[dict[str, Any]]) -> Timing:
    wall: list[float] = []
    cpu: list[float] = []
    with _captured_stdout() as output:
        for event in events:
            started_wall, started_cpu = time.perf_counter(), time.thread_time()
            result = handler(event, _context())
            cpu.append((time.thread_time() - started_cpu) * 1000)
            wall.append((time.perf_counter() - started_wall) * 1000)
            if result["statusCode"] != 200:
                raise RuntimeError(f"{label}: unexpected answer {result['statusCode']}: {result.get('body')}")
    text = b"".join(output)
    return Timing(label, wall, cpu, text.count(b"\n"), len(text))


def _value_bytes(value: dict[str, Any]) -> int:
    """DynamoDB's item-size rules, closely enough to count capacity units (1 WRU per 1 KB written)."""
    ((kind, inner),) = value.items()
    sizes: dict[str, Callable[[], int]] = {
        "S": lambda: len(inner.encode()),
        "B": lambda: len(inner),
        "N": lambda: len(inner.strip("-").replace(".", "").lstrip("0")) // 2 + 1,
        "BOOL": lambda: 1,
        "NULL": lambda: 1,
        "M": lambda: 3 + sum(len(k.encode()) + _value_bytes(v) + 1 for k, v in inner.items()),
        "L": lambda: 3 + sum(_value_bytes(v) + 1 for v in inner),
    }
    if kind in sizes:
        return sizes[kind]()
    return sum(_value_bytes({kind[0]: member}) for member in inner)  # SS, NS, BS


def _item_bytes(item: dict[str, Any]) -> int:
    return sum(len(name.encode()) + _value_bytes(value) for name, value in item.items())


def item_sizes(stack: Any) -> dict[str, float]:
    """Mean stored item size per table (after the run), in bytes."""
    client = stack.client("dynamodb")
    sizes = {}
    for logical_id, table in TABLE_NAMES.items():
        items = client.scan(TableName=table)["Items"]
        sizes[logical_id] = statistics.mean(_item_bytes(item) for item in items)
    return sizes


def run(calls: int) -> tuple[list[Timing], dict[str, float]]:
    with start_stack(api_port=None) as stack:
        os.environ.update(stack.env | {"POWERTOOLS_LOG_LEVEL": "INFO"})
        sys.path.insert(0, str(CODE_DIR))
        app = importlib.import_module("app")
        api_key = ZAPIER_DEMO.api_key
        booking = stack.sandboxes["iclosed"].bookings[0]
        day = datetime.now(UTC).date() + timedelta(days=60)

        def reschedule(i: int, key: str) -> dict[str, Any]:
            # A distinct start per request (minutes apart), so every new request really moves the booking.
            start = (
                f"{(day + timedelta(days=i // 600)).isoformat()}T{8 + (i % 600) // 60:02d}:{i % 60:02d}:00"
            )
            body = {"provider": "iclosed", "booking_id": int(booking), "start": start, "timezone": "UTC"}
            return _event("POST", "/v1/reschedules", api_key, body, key)

        keys = [f"timing-{uuid.uuid4()}" for _ in range(WARM_UP_CALLS + calls)]
        new = [reschedule(i, key) for i, key in enumerate(keys)]
        with _captured_stdout():
            warm_up = [app.lambda_handler(event, _context()) for event in new[:WARM_UP_CALLS]]
        ids = [json.loads(answer["body"])["reschedule_id"] for answer in warm_up]
        timings = [
            _measure("new reschedule", app.lambda_handler, new[WARM_UP_CALLS:]),
            _measure(
                "replay",
                app.lambda_handler,
                [reschedule(i, keys[i]) for i in range(WARM_UP_CALLS)] * (calls // WARM_UP_CALLS),
            ),
            _measure(
                "lookup",
                app.lambda_handler,
                [_event("GET", f"/v1/reschedules/{rid}", api_key, None, None) for rid in ids]
                * (calls // WARM_UP_CALLS),
            ),
        ]
        return timings, item_sizes(stack)


def cold_import_cpu_seconds(*, bytecode_cached: bool) -> float:
    """Median CPU seconds a fresh interpreter spends importing the handler module."""
    env = os.environ | {
        "IDEMPOTENCY_TABLE_NAME": "relay-idempotency",
        "RESCHEDULES_TABLE_NAME": "relay-reschedules",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "POWERTOOLS_SERVICE_NAME": "reschedule-relay",
    }
    env.pop("POWERTOOLS_TRACE_DISABLED", None)
    samples = []
    for _ in range(COLD_IMPORT_RUNS):
        with tempfile.TemporaryDirectory() as empty_cache:
            # An empty pycache_prefix (and no writing) makes every import compile from source.
            flags = [] if bytecode_cached else ["-X", f"pycache_prefix={empty_cache}", "-B"]
            result = subprocess.run(  # noqa: S603 - our own interpreter importing our own module
                [sys.executable, *flags, "-c", _COLD_IMPORT],
                cwd=CODE_DIR,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
        samples.append(float(result.stdout.strip().splitlines()[-1]))
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--calls", type=int, default=DEFAULT_CALLS, help="measured calls per kind")
    args = parser.parse_args(argv)
    calls = max(WARM_UP_CALLS, args.calls - args.calls % WARM_UP_CALLS)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores; warm handler, in-process, local stack")
    timings, sizes = run(calls)
    for timing in timings:
        print(timing.row())
    for logical_id, size in sizes.items():
        print(f"{logical_id:<16} mean item {size:6.0f} B")
    cached, uncached = (cold_import_cpu_seconds(bytecode_cached=flag) for flag in (True, False))
    print(f"cold import of app: {cached:.2f} CPU-s with bytecode cached, {uncached:.2f} CPU-s compiling all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
