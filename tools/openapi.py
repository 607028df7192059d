"""Writes openapi.json: Powertools' document for the handler's routes, plus the request body it cannot
infer (the handler decodes three content types itself). `python -m tools.openapi` regenerates it;
tests/unit/test_openapi.py checks the committed file is current.

The handler routes with its own small router (relay/web/http.py: Powertools' resolver costs cold
start); here each of its routes, with the OpenAPI metadata it carries, is registered on a Powertools
resolver, whose document generator does the rest."""

from __future__ import annotations

import functools
import inspect
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
OPENAPI_PATH = REPO_ROOT / "openapi.json"
TITLE = "Reschedule relay"
VERSION = "1.0.0"
# Only names the handler needs at import; nothing is called.
_IMPORT_ENV = {
    "IDEMPOTENCY_TABLE_NAME": "relay-idempotency",
    "RESCHEDULES_TABLE_NAME": "relay-reschedules",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "true",
}


def _documented(handler: Callable[..., Any], returns: Any) -> Callable[..., Any]:
    """`handler` as Powertools documents it: its parameters, and Powertools' own Response as what it
    returns (the relay's Response is not a body model)."""

    @functools.wraps(handler)
    def documented(*args: Any, **kwargs: Any) -> Any:
        return handler(*args, **kwargs)

    signature = inspect.signature(handler, eval_str=True)
    documented.__signature__ = signature.replace(return_annotation=returns)  # type: ignore[attr-defined]
    return documented


def document() -> dict[str, Any]:
    for name, value in _IMPORT_ENV.items():
        os.environ.setdefault(name, value)
    # Without it the handler reads nothing at import (relay/prefetch.py reads the caller registry).
    os.environ.pop("SECRETS_PREFIX", None)
    sys.path.insert(0, str(REPO_ROOT / "functions" / "reschedule"))
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response  # noqa: PLC0415

    import app  # noqa: PLC0415 - after the environment is set
    from relay.web.schema import request_body, subscription_request_body  # noqa: PLC0415

    resolver = APIGatewayHttpResolver(enable_validation=False)
    for route in app.app.routes:
        resolver.route(route.rule, route.method, **route.openapi)(_documented(route.handler, Response[str]))
    doc: dict[str, Any] = json.loads(resolver.get_openapi_json_schema(title=TITLE, version=VERSION))
    doc["paths"]["/v1/reschedules"]["post"]["requestBody"] = request_body()
    doc["paths"]["/v1/subscriptions"]["post"]["requestBody"] = subscription_request_body()
    doc["components"]["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer"},
        "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
    }
    doc["security"] = [{"bearer": []}, {"apiKey": []}]
    return doc


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    OPENAPI_PATH.write_text(render())
    print(f"wrote {OPENAPI_PATH.relative_to(REPO_ROOT)}")
