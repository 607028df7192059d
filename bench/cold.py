"""Cold starts: each run is a new process (`bench.cold_child`) with a Lambda-like environment.

Two layouts: the older "Lambda-like site" (the dev interpreter, `-S`, the layer's requirements and
boto3 installed for this machine, bytecode cached as the dev tree has it), and "as deployed"
(`bench.artifacts`: the function and layer trees `tools.package` builds, read-only, imported by
CPython 3.13 with PYTHONDONTWRITEBYTECODE=1 and only those trees and a precompiled boto3 on
sys.path), with and without their bytecode, beside the floor measured the same way, and the peer
(bench/peer/: the same job the way Powertools' docs teach it) from its own tree on the same layer.

Runs are interleaved (one of each mode, then again) so slow drift on the machine affects every
mode alike; the first round is a discarded warm-up (bytecode caches, the OS file cache). Before it,
`warm_emulators` brings the local services to their steady state (DynamoDB Local is a JVM), so a
cold start is charged for its own work, not for the emulator's.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.artifacts import Deployed
from bench.child import run_json_child
from bench.lambda_env import lambda_environment
from bench.layer import LambdaSite
from bench.workload import PROVIDER, PROVIDER_SECRET_NAME, Reschedule, Workload, lambda_context
from local.stack import CODE_DIR, TABLE_NAMES, Stack

# A cold start takes about a second here; a child that takes this long is stuck, not slow.
CHILD_TIMEOUT_SECONDS = 60.0
# Rounds of the calls a cold start makes, run against the emulators before any cold start is timed.
EMULATOR_WARMUP_ROUNDS = 300
COLD_CHILD_SCRIPT = Path(__file__).resolve().parent / "cold_child.py"


@dataclass(frozen=True)
class ColdMode:
    name: str
    child: str  # "relay" or "floor" (bench.cold_child)
    tracing: bool = False  # Tracer active, as template.yaml deploys it (the stack's env disables it)
    lambda_site: bool = True  # only the layer's and the runtime's packages; else the dev virtualenv
    deployed: str | None = None  # "pyc" / "nopyc" / "peer": the artifacts as deployed (bench.artifacts)
    says_replayed: bool = True  # the relay's answer says whether it is a replay; the peer's does not


MODES = (
    ColdMode("relay", "relay"),
    ColdMode("floor", "floor"),
    ColdMode("relay_traced", "relay", tracing=True),
    ColdMode("relay_venv", "relay", lambda_site=False),
    ColdMode("deployed", "relay", deployed="pyc"),
    ColdMode("deployed_nopyc", "relay", deployed="nopyc"),
    ColdMode("deployed_traced", "relay", tracing=True, deployed="pyc"),
    ColdMode("deployed_floor", "floor", deployed="pyc"),
    ColdMode("peer", "relay", deployed="peer", says_replayed=False),
)
PEER_MODES = tuple(mode for mode in MODES if mode.deployed == "peer")


@dataclass(frozen=True)
class Layouts:
    site: LambdaSite | None  # None: no "Lambda-like site" modes in this run (`--only peer`)
    deployed: dict[str, Deployed]


@contextlib.contextmanager
def xray_sink() -> Iterator[socket.socket]:
    """A UDP socket standing in for the X-Ray daemon, so traced runs send their segments somewhere."""
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sink.bind(("127.0.0.1", 0))
        sink.setblocking(False)
        yield sink
    finally:
        sink.close()


def _drain(sink: socket.socket) -> int:
    received = 0
    while True:
        try:
            sink.recv(65536)
        except BlockingIOError:
            return received
        received += 1


def _spec(stack: Stack, reschedule: Reschedule) -> dict[str, Any]:
    path, body = reschedule.provider_request()
    return {
        "event": reschedule.event(),
        "context": asdict(lambda_context()),
        "floor": {
            "secret_id": PROVIDER_SECRET_NAME,
            "table": TABLE_NAMES["IdempotencyTable"],
            "item_id": f"floor#{reschedule.key}",
            "url": stack.sandboxes[PROVIDER].url + path,
            "body": body,
        },
    }


def _command(
    mode: ColdMode, env: dict[str, str], layouts: Layouts, extra_args: tuple[str, ...]
) -> tuple[list[str], Path]:
    """The child's command line and working directory; adjusts `env` for the layout."""
    if mode.deployed is not None:
        deployed = layouts.deployed[mode.deployed]
        # -S: no site-packages; -P: not even this script's folder. Only the artifacts are importable.
        env["PYTHONPATH"] = os.pathsep.join(deployed.python_path())
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["LAMBDA_TASK_ROOT"] = str(deployed.function)
        return [deployed.interpreter, *extra_args, "-S", "-P", str(COLD_CHILD_SCRIPT)], deployed.function
    interpreter = [sys.executable, *extra_args]
    if mode.lambda_site:
        if layouts.site is None:
            raise ValueError(f"mode {mode.name} needs the Lambda-like site, which this run did not lay out")
        # -S: no site-packages of the dev virtualenv; the layer and the runtime's boto3 instead.
        interpreter.append("-S")
        env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], *layouts.site.python_path()])
    return [*interpreter, "-m", "bench.cold_child"], CODE_DIR


def run_child(
    mode: ColdMode,
    spec: dict[str, Any],
    env: dict[str, str],
    layouts: Layouts,
    *,
    extra_args: tuple[str, ...] = (),
    child: str | None = None,
) -> tuple[dict[str, Any], str]:
    """Run one child; returns its result and its stderr (the relay's logs go to stdout)."""
    env = dict(env)
    command, cwd = _command(mode, env, layouts, extra_args)
    return run_json_child(
        [*command, child or mode.child],
        spec,
        env=env,
        cwd=cwd,
        timeout_s=CHILD_TIMEOUT_SECONDS,
        what=f"cold-start child ({mode.name})",
    )


def _check(mode: ColdMode, result: dict[str, Any]) -> None:
    if result.get("status") != 200 or (
        mode.child == "relay" and mode.says_replayed and result.get("replayed") is not False
    ):
        raise RuntimeError(f"cold-start child ({mode.name}) did not make a new reschedule: {result}")


def warm_emulators(stack: Stack, rounds: int = EMULATOR_WARMUP_ROUNDS) -> float:
    """Run each remote call a cold start makes `rounds` times from this process; returns the seconds.

    DynamoDB Local is a JVM: an operation it has run only a few times takes several times its steady
    state (a TransactWriteItems like the relay's took about 40 ms in a fresh stack, 8-10 ms after a
    few hundred), and the cold starts alone run the relay's transaction far less often than the
    floor's PutItem. DynamoDB has no such warm-up, so neither side of the ratio pays for the
    emulator's: a conditional PutItem, a TransactWriteItems of the relay's shape (an update and a put
    in the idempotency table, a put in the records table), the peer's UpdateItem (Powertools completes
    its key with one) and a GetSecretValue, per round.
    """
    dynamodb, secrets = stack.client("dynamodb"), stack.client("secretsmanager")
    table, records = TABLE_NAMES["IdempotencyTable"], TABLE_NAMES["ReschedulesTable"]
    expires = {"N": str(int(time.time()) + 3600)}
    started = time.perf_counter()
    for _ in range(rounds):
        key = f"emulator-warmup#{uuid.uuid4()}"
        dynamodb.put_item(
            TableName=table,
            Item={"id": {"S": key}, "expiration": expires},
            ConditionExpression="attribute_not_exists(id)",
        )
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": {"id": {"S": f"{key}#last"}, "expiration": expires}}},
                {
                    "Update": {
                        "TableName": table,
                        "Key": {"id": {"S": key}},
                        "UpdateExpression": "SET #status = :status",
                        "ExpressionAttributeNames": {"#status": "status"},
                        "ExpressionAttributeValues": {":status": {"S": "COMPLETED"}},
                    }
                },
                {
                    "Put": {
                        "TableName": records,
                        # booking_key and attempted_at: the records table's index is kept up too
                        "Item": {
                            "reschedule_id": {"S": key},
                            "booking_key": {"S": "emulator-warmup"},
                            "attempted_at": {"S": time.strftime("%Y-%m-%dT%H:%M:%SZ")},
                            "expires_at": expires,
                        },
                    }
                },
            ]
        )
        dynamodb.update_item(
            TableName=table,
            Key={"id": {"S": key}},
            UpdateExpression="SET #data = :data",
            ExpressionAttributeNames={"#data": "data"},
            ExpressionAttributeValues={":data": {"S": "{}"}},
        )
        secrets.get_secret_value(SecretId=PROVIDER_SECRET_NAME)
    return time.perf_counter() - started


def run_cold_starts(
    stack: Stack, layouts: Layouts, runs: int, modes: tuple[ColdMode, ...] = MODES
) -> dict[str, list[dict[str, Any]]]:
    """`runs` timed cold starts of each mode, after one discarded warm-up round."""
    workload = Workload("cold")
    samples: dict[str, list[dict[str, Any]]] = {mode.name: [] for mode in modes}
    with xray_sink() as sink:
        daemon = f"127.0.0.1:{sink.getsockname()[1]}"
        for round_number in range(runs + 1):
            for mode in modes:
                env = lambda_environment(stack.env, tracing=mode.tracing, xray_daemon=daemon)
                result, stderr = run_child(mode, _spec(stack, workload.next()), env, layouts)
                _check(mode, result)
                result["stderr_lines"] = [line for line in stderr.splitlines() if line.strip()]
                result["xray_datagrams"] = _drain(sink)
                if round_number > 0:
                    samples[mode.name].append(result)
    return samples


def import_profile(stack: Stack, layouts: Layouts, mode: ColdMode) -> str:
    """`python -X importtime` output (stderr) of one relay cold start, for attributing init time.

    Without SECRETS_PREFIX, so the caller registry is not read on a thread during init
    (relay/prefetch.py): `-X importtime` keeps one nesting count for all threads, so imports the
    read makes on its thread would be charged to whatever the main thread is importing. The
    relay's default prefix is the local stack's, so the request is the same.
    """
    workload = Workload("importtime")
    with xray_sink() as sink:
        daemon = f"127.0.0.1:{sink.getsockname()[1]}"
        env = lambda_environment(stack.env, tracing=mode.tracing, xray_daemon=daemon)
        env.pop("SECRETS_PREFIX", None)
        result, stderr = run_child(
            mode, _spec(stack, workload.next()), env, layouts, extra_args=("-X", "importtime")
        )
    _check(mode, result)  # the same request, answered the same way
    return stderr


def stage_profile(stack: Stack, layouts: Layouts, mode: ColdMode) -> dict[str, Any]:
    """One relay cold start taken apart step by step (bench.cold_child `stages`)."""
    workload = Workload("stages")
    with xray_sink() as sink:
        daemon = f"127.0.0.1:{sink.getsockname()[1]}"
        env = lambda_environment(stack.env, tracing=mode.tracing, xray_daemon=daemon)
        result, _ = run_child(mode, _spec(stack, workload.next()), env, layouts, child="stages")
    return result
