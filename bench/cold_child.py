"""One cold start in a fresh interpreter, started by `bench.cold` (never imported by anything else).

    python -m bench.cold_child relay|floor|stages RESULT_PATH    # the spec comes as JSON on stdin
    python -S -P bench/cold_child.py relay|floor RESULT_PATH     # "as deployed": artifacts only on sys.path

The working directory is the function's code directory (Lambda's /var/task) and the environment is
Lambda-like (`bench.lambda_env`). Everything before the timer starts is what both modes share: the
interpreter, this module's few standard-library imports and the spec. The timer covers the rest:

- relay: `import app` (module init, as Lambda's INIT phase), then its first request, a new reschedule.
- floor: the least any implementation must do for that request: import boto3, create DynamoDB and
  Secrets Manager clients, fetch the provider token, one conditional PutItem, one PUT to the
  provider with urllib3 (which botocore has already loaded).
- stages (attribution, not a budget figure): what `import app` does, one step at a time, each
  step timed with the garbage collections inside it: the libraries app imports, in the order it
  needs them, then the relay's modules, then app's module body (with the calls inside it that cost
  most timed on their own), then the first request. Earlier steps pay for modules later ones share.
"""

from __future__ import annotations

import functools
import gc
import importlib
import importlib.util
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Loaded from its file, not imported as `local.lambda_context`: an "as deployed" child runs this
# file as a script with only the artifacts on sys.path (bench.cold), so the repository is not there.
_CONTEXT_FILE = Path(__file__).resolve().parent.parent / "local" / "lambda_context.py"
_context_spec = importlib.util.spec_from_file_location("bench_lambda_context", _CONTEXT_FILE)
assert _context_spec is not None
assert _context_spec.loader is not None
_context_module = importlib.util.module_from_spec(_context_spec)
sys.modules[_context_spec.name] = _context_module  # dataclasses looks its module up by name
_context_spec.loader.exec_module(_context_module)
LambdaContext = _context_module.LambdaContext


class GcClock:
    """Time spent in garbage collections (gc.callbacks), split at `mark()`."""

    def __init__(self) -> None:
        self.ms = 0.0
        self.collections = 0
        self._started = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.ms += (time.perf_counter() - self._started) * 1000
            self.collections += 1

    def take(self) -> dict[str, float]:
        taken = {"ms": round(self.ms, 3), "collections": self.collections}
        self.ms, self.collections = 0.0, 0
        return taken


def relay(spec: dict[str, Any]) -> dict[str, Any]:
    context = LambdaContext(**spec["context"])
    event = spec["event"]
    gc_clock = GcClock()
    started = time.perf_counter()
    import app  # noqa: PLC0415 - importing the handler is what is measured

    imported = time.perf_counter()
    gc_init = gc_clock.take()
    result = app.lambda_handler(event, context)
    answered = time.perf_counter()
    body = json.loads(result.get("body") or "null")
    return {
        "cold_start_ms": (answered - started) * 1000,
        "init_ms": (imported - started) * 1000,
        "first_request_ms": (answered - imported) * 1000,
        "status": result.get("statusCode"),
        "replayed": body.get("replayed") if isinstance(body, dict) else None,
        "tracer_disabled": bool(app.tracer.disabled),
        "gc_init": gc_init,
        "gc_first_request": gc_clock.take(),
        "modules_loaded": len(sys.modules),
    }


def floor(spec: dict[str, Any]) -> dict[str, Any]:
    floor_spec = spec["floor"]
    marks = [("start", time.perf_counter())]
    import boto3  # noqa: PLC0415 - importing boto3 is part of the floor

    marks.append(("import boto3", time.perf_counter()))
    session = boto3.session.Session()
    dynamodb = session.client("dynamodb")
    secretsmanager = session.client("secretsmanager")
    marks.append(("2 clients", time.perf_counter()))
    secret = secretsmanager.get_secret_value(SecretId=floor_spec["secret_id"])
    token = json.loads(secret["SecretString"])["api_key"]
    marks.append(("GetSecretValue", time.perf_counter()))
    dynamodb.put_item(
        TableName=floor_spec["table"],
        Item={"id": {"S": floor_spec["item_id"]}, "expiration": {"N": str(int(time.time()) + 3600)}},
        ConditionExpression="attribute_not_exists(id)",
    )
    marks.append(("PutItem", time.perf_counter()))
    import urllib3  # noqa: PLC0415 - already loaded by botocore: this is a dictionary lookup

    answer = urllib3.PoolManager().request(
        "PUT",
        floor_spec["url"],
        body=json.dumps(floor_spec["body"]).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    json.loads(answer.data)
    marks.append(("urllib3 PUT", time.perf_counter()))
    return {
        "cold_start_ms": (marks[-1][1] - marks[0][1]) * 1000,
        "steps_ms": {name: (at - marks[i][1]) * 1000 for i, (name, at) in enumerate(marks[1:])},
        "status": answer.status,
    }


# (label, modules) in the order `import app` first needs them; app itself comes after these.
_IMPORT_STAGES = (
    ("import boto3 (runtime)", ("boto3",)),
    ("import pydantic", ("pydantic",)),
    ("import httpx", ("httpx",)),
    ("import powertools Logger/Metrics/Tracer", ("aws_lambda_powertools",)),
    ("import powertools parameters", ("aws_lambda_powertools.utilities.parameters",)),
    (
        "import relay.settings + relay.reschedule.request (pydantic models)",
        ("relay.settings", "relay.reschedule.request"),
    ),
    (
        "import rest of relay",
        (
            "relay.web.decoding",
            "relay.web.http",
            "relay.dal.clients",
            "relay.dal.records",
            "relay.dal.ledger",
            "relay.dal.secrets",
            "relay.reschedule.service",
        ),
    ),
)
# Calls inside app's module body, timed on their own: (module, attribute path, label).
_APP_BODY_CALLS = (
    ("aws_lambda_powertools", "Tracer.__init__", "Tracer() (X-Ray SDK provider, patching when active)"),
    ("aws_lambda_powertools", "Logger.__init__", "Logger()"),
    ("aws_lambda_powertools", "Metrics.__init__", "Metrics()"),
    ("relay.settings", "get_settings", "get_settings() (pydantic validation)"),
    ("boto3.session", "Session.client", "boto3 clients (DynamoDB, Secrets Manager)"),
    ("httpx", "Client.__init__", "httpx.Client() (SSL context, CA bundle)"),
    ("relay.dal.secrets", "SecretsProvider.__init__", "SecretsProvider()"),
)


def _time_calls(owner: Any, attribute: str, label: str, spent: dict[str, float]) -> None:
    original: Callable[..., Any] = getattr(owner, attribute)

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[label] = spent.get(label, 0.0) + (time.perf_counter() - started) * 1000

    setattr(owner, attribute, timed)


def _import_all(names: tuple[str, ...]) -> None:
    for name in names:
        importlib.import_module(name)


def stages(spec: dict[str, Any]) -> dict[str, Any]:
    context = LambdaContext(**spec["context"])
    gc_clock = GcClock()
    steps: list[dict[str, Any]] = []

    def step(label: str, action: Callable[[], Any]) -> Any:
        modules = len(sys.modules)
        started = time.perf_counter()
        value = action()
        steps.append(
            {
                "step": label,
                "ms": (time.perf_counter() - started) * 1000,
                "gc": gc_clock.take(),
                "modules": len(sys.modules) - modules,
            }
        )
        return value

    for label, names in _IMPORT_STAGES:
        step(label, functools.partial(_import_all, names))
    spent: dict[str, float] = {}
    for module_name, path, label in _APP_BODY_CALLS:
        owner: Any = sys.modules[module_name]
        *parents, attribute = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent)
        _time_calls(owner, attribute, label, spent)
    app = step("app module body", lambda: importlib.import_module("app"))
    step("first request (new reschedule)", lambda: app.lambda_handler(spec["event"], context))
    return {"steps": steps, "app_body_calls_ms": spent, "tracer_disabled": bool(app.tracer.disabled)}


def main() -> int:
    mode, result_path = sys.argv[1], sys.argv[2]
    spec = json.load(sys.stdin)
    result = {"relay": relay, "floor": floor, "stages": stages}[mode](spec)
    with open(result_path, "w", encoding="utf-8") as out:  # noqa: PTH123 - no pathlib before the timer
        json.dump(result, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
