"""The requests the benchmark sends: new reschedules of one iClosed booking, each with its own
start time and Idempotency-Key, as API Gateway HTTP API v2 events; their replays; the context.

Also the floor's own provider request: the same PUT the relay's iClosed adapter sends, written out
from the contract, so the floor never imports the relay.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.lambda_env import FUNCTION_MEMORY_MB, FUNCTION_NAME, FUNCTION_TIMEOUT_SECONDS
from local.emulator import build_event
from local.lambda_context import LambdaContext, invocation_context
from local.sandbox.iclosed import RESCHEDULE_PATH
from local.seed import PROVIDER_TOKENS, SECRETS_PREFIX, ZAPIER_DEMO
from local.stack import REGION

CALLER = ZAPIER_DEMO  # an API-key source that may use iClosed
PROVIDER = "iclosed"
BOOKING_ID = 1001
TIMEZONE = "UTC"
PROVIDER_TOKEN = PROVIDER_TOKENS[PROVIDER]
PROVIDER_SECRET_NAME = f"{SECRETS_PREFIX}/providers/{PROVIDER}/default"
# Start times are spread over quarter hours of the days ahead, so no two requests share one.
_SLOTS_PER_DAY = 96
_MAX_DAYS_AHEAD = 700  # the relay refuses starts more than 730 days ahead


@dataclass(frozen=True)
class Reschedule:
    key: str
    start: str  # wall time in TIMEZONE, no offset
    # The iClosed default account unless told otherwise (the queue bench also moves NovaCal bookings).
    provider: str = PROVIDER
    booking_id: int | str = BOOKING_ID
    account: str | None = None

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "provider": self.provider,
            "booking_id": self.booking_id,
            "start": self.start,
            "timezone": TIMEZONE,
        }
        return body | ({"account": self.account} if self.account else {})

    def event(self, *, respond_async: bool = False) -> dict[str, Any]:
        """A fresh API Gateway event (its own request id) for this reschedule; sent twice, a replay.

        `respond_async`: with `Prefer: respond-async`, so the relay queues it and answers 202.
        """
        prefer = [("prefer", "respond-async")] if respond_async else []
        return build_event(
            method="POST",
            raw_path="/v1/reschedules",
            raw_query="",
            headers=[
                ("content-type", "application/json"),
                ("authorization", f"Bearer {CALLER.api_key}"),
                ("idempotency-key", self.key),
                *prefer,
            ],
            body=json.dumps(self.body()).encode(),
            route_key="POST /v1/reschedules",
        )

    def provider_request(self) -> tuple[str, dict[str, Any]]:
        """Path and JSON body of the provider call this reschedule makes (contracts/iclosed.md)."""
        return RESCHEDULE_PATH, {"id": BOOKING_ID, "dateTime": self.start, "timeZone": TIMEZONE}


class Workload:
    """Unique reschedules: a new key and a new start time each, never repeated within a run."""

    def __init__(self, namespace: str) -> None:
        self._prefix = f"bench-{namespace}-{uuid.uuid4().hex[:8]}"
        self._first_day = datetime.now(UTC).date() + timedelta(days=1)
        self._count = 0

    def next(self, **target: Any) -> Reschedule:
        """`target`: provider, booking_id and account, when not the iClosed default account's booking."""
        n = self._count
        self._count += 1
        day, slot = divmod(n, _SLOTS_PER_DAY)
        if day >= _MAX_DAYS_AHEAD:
            raise RuntimeError("the workload ran out of distinct start times")
        start = (
            f"{(self._first_day + timedelta(days=day)).isoformat()}T{slot // 4:02d}:{slot % 4 * 15:02d}:00"
        )
        return Reschedule(key=f"{self._prefix}-{n}", start=start, **target)


def lambda_context(timeout_seconds: int = FUNCTION_TIMEOUT_SECONDS) -> LambdaContext:
    return invocation_context(
        timeout_seconds=timeout_seconds,
        function_name=FUNCTION_NAME,
        memory_mb=FUNCTION_MEMORY_MB,
        region=REGION,
        log_stream_name="bench",
    )


def check_queued(result: dict[str, Any]) -> str:
    """An async request must have been queued (202, `status: queued`); its reschedule id."""
    body = json.loads(result.get("body") or "null") if result.get("statusCode") == 202 else None
    if not isinstance(body, dict) or body.get("status") != "queued":
        raise RuntimeError(
            f"unexpected answer (wanted 202 queued): {result.get('statusCode')} {result.get('body')!r}"
        )
    reschedule_id: str = body["reschedule_id"]
    return reschedule_id


def check_answer(result: dict[str, Any], *, replayed: bool) -> None:
    """A measured request must have succeeded as intended, or its timing means nothing."""
    status = result.get("statusCode")
    body = json.loads(result.get("body") or "null") if status == 200 else result.get("body")
    if status != 200 or not isinstance(body, dict) or body.get("replayed") is not replayed:
        raise RuntimeError(f"unexpected answer (wanted 200, replayed={replayed}): {status} {body!r}")
