"""Helpers the tests share: the demo sources, the sandbox client, an in-process invoker, values.

Fixtures live in tests/conftest.py; everything a test imports by name lives here.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from local.emulator import build_event
from local.event_source import EventSourcePoller, start_event_source
from local.lambda_context import LambdaContext, invocation_context
from local.seed import FORM_DEMO, SIGNING_DEMO, WEBSITE_DEMO, ZAPIER_DEMO, registry
from local.sign_link import mint_link
from local.stack import CODE_DIR, REGION, TABLE_NAMES, Stack

TEST_PROVIDER_READ_TIMEOUT_SECONDS = "1.5"
ZAPIER = ZAPIER_DEMO
WEBSITE = WEBSITE_DEMO  # API key, NovaCal only
SIGNING = SIGNING_DEMO  # Standard Webhooks
FORM = FORM_DEMO  # signed links; its pages are wherever the stack serves them (stack.sources)


@dataclass
class Sandbox:
    url: str
    bookings: list[str]

    def calls(self) -> list[dict[str, Any]]:
        calls: list[dict[str, Any]] = httpx.get(f"{self.url}/_sandbox/calls").json()
        return calls

    def fault(self, **fault: Any) -> None:
        httpx.post(f"{self.url}/_sandbox/faults", json=fault).raise_for_status()

    def reset(self) -> None:
        httpx.delete(f"{self.url}/_sandbox/calls").raise_for_status()
        httpx.delete(f"{self.url}/_sandbox/faults").raise_for_status()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


class Invoker:
    """Calls the handler in-process with an HTTP API v2 event, as Lambda would."""

    def __init__(self, module: Any) -> None:
        self.module = module

    def __call__(
        self,
        method: str,
        path: str,
        *,
        body: bytes | str | dict[str, Any] = b"",
        headers: dict[str, str] | None = None,
        content_type: str | None = None,
        key: str | None = ZAPIER.api_key,
    ) -> Answer:
        all_headers = dict(headers or {})
        if isinstance(body, dict):
            body = json.dumps(body)
            content_type = content_type or "application/json"
        if isinstance(body, str):
            body = body.encode()
        if content_type:
            all_headers["content-type"] = content_type
        if key is not None:
            all_headers.setdefault("authorization", f"Bearer {key}")
        raw_path, _, raw_query = path.partition("?")
        event = build_event(
            method=method,
            raw_path=raw_path,
            raw_query=raw_query,
            headers=list(all_headers.items()),
            body=body,
            route_key=f"{method} {raw_path}",
        )
        return self.invoke(event)

    def invoke(self, event: dict[str, Any]) -> Answer:
        result = self.module.lambda_handler(event, lambda_context())
        raw = result.get("body") or ""
        if result.get("isBase64Encoded"):
            raw = base64.b64decode(raw).decode()
        headers = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
        body = json.loads(raw) if raw and "json" in headers.get("content-type", "") else raw
        return Answer(result["statusCode"], headers, body)


def lambda_context(timeout_seconds: int = 25) -> LambdaContext:
    return invocation_context(timeout_seconds=timeout_seconds)


def stored_record(stack: Stack, reschedule_id: str) -> dict[str, Any]:
    """The reschedules table item, read straight from DynamoDB Local (values as their wire strings)."""
    item = stack.client("dynamodb").get_item(
        TableName=TABLE_NAMES["ReschedulesTable"], Key={"reschedule_id": {"S": reschedule_id}}
    )["Item"]
    return {k: next(iter(v.values())) for k, v in item.items()}


def future(days: int = 30, hour: int = 10, minute: int = 0) -> str:
    """A wall time `days` ahead at hh:mm (no offset), unique per call to keep implicit keys apart."""
    day = datetime.now(UTC).date() + timedelta(days=days)
    return f"{day.isoformat()}T{hour:02d}:{minute:02d}:00"


def new_key() -> str:
    return f"test-{uuid.uuid4()}"


def link(
    stack: Stack, provider: str, booking_id: str, expires_in: int = 600, **kwargs: Any
) -> dict[str, str]:
    """A signed link's hidden fields and url, minted from the stack's registry as `make sign-link` does."""
    return mint_link(
        registry(stack.sources),
        source=FORM.name,
        provider=provider,
        booking_id=booking_id,
        expires_in=expires_in,
        **kwargs,
    )


def start_delivery_worker(stack: Stack, *, function_timeout_s: int) -> EventSourcePoller:
    """The delivery worker a test module runs itself on its stack's queue (small batches, a short
    Timeout, a 1 s receive wait), for tests that need the worker's schedule on a short clock."""
    queue = stack.queues["DeliveryQueue"]
    return start_event_source(
        queue_url=queue.url,
        queue_arn=queue.arn,
        endpoint=stack.env["AWS_ENDPOINT_URL_SQS"],
        handler="worker.lambda_handler",
        code_dir=CODE_DIR,
        env=stack.env,
        batch_size=5,
        maximum_concurrency=2,
        function_timeout_s=function_timeout_s,
        wait_time_seconds=1,
        region=REGION,
    )
