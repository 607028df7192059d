"""The peer: the relay's job written the straightforward way Powertools' documentation teaches.

Never deployed. `make bench` lays it out read-only beside the relay, on the same layer and runtime
(bench.artifacts), and measures its cold start and warm requests the same way (bench.cold,
bench.container), so the relay's budgets can be ratios against it (bench.budgets).

The job, for the bench's workload (an iClosed booking of an API-key source): authenticate the
caller against the sources registry, validate the body with a pydantic model, and, once per
Idempotency-Key and source, move the booking at the provider with httpx and put the attempt record.
Powertools' `idempotent_function` on DynamoDB makes it exactly-once: a conditional PutItem takes the
key, an UpdateItem stores the answer, and a repeat gets the stored answer back; with the record's
PutItem, three DynamoDB round trips per new reschedule (the relay makes two).

It reads the relay's own settings (the table names, the secrets prefix, the iClosed base URL),
which the bench's environment sets.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

import boto3
import httpx
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, ValidationError

PROVIDER = "iclosed"
RESCHEDULE_PATH = "/v1/eventCalls/reschedule"  # the iClosed reschedule endpoint
SECRETS_MAX_AGE_SECONDS = 300  # how long parameters.get_secret keeps a secret
PROVIDER_TIMEOUT_SECONDS = 10.0
RECORD_RETENTION_SECONDS = 90 * 24 * 3600  # the relay's RECORD_RETENTION_DAYS default
IDEMPOTENCY_EXPIRES_SECONDS = 24 * 3600
PROBLEM_JSON = "application/problem+json"

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = APIGatewayHttpResolver()

dynamodb = boto3.client("dynamodb")
persistence = DynamoDBPersistenceLayer(table_name=os.environ["IDEMPOTENCY_TABLE_NAME"], boto3_client=dynamodb)
idempotency = IdempotencyConfig(
    event_key_jmespath="[source, idempotency_key]",
    payload_validation_jmespath="body",
    expires_after_seconds=IDEMPOTENCY_EXPIRES_SECONDS,
)
provider_http = httpx.Client(base_url=os.environ["ICLOSED_BASE_URL"], timeout=PROVIDER_TIMEOUT_SECONDS)
SECRETS_PREFIX = os.environ["SECRETS_PREFIX"]
RECORDS_TABLE = os.environ["RESCHEDULES_TABLE_NAME"]


class RescheduleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: Literal["iclosed"]
    booking_id: int
    start: datetime  # wall time in `timezone`
    timezone: str
    account: str = "default"


class Refused(Exception):
    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


def _problem(status: int, title: str, detail: str) -> Response[str]:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return Response(status_code=status, content_type=PROBLEM_JSON, body=json.dumps(body))


# Powertools' exception_handler and idempotent_function decorators are untyped (Callable[..., Any]).
@app.exception_handler(Refused)  # type: ignore[untyped-decorator]
def _refused(error: Refused) -> Response[str]:
    return _problem(error.status, error.title, error.detail)


@app.exception_handler(httpx.HTTPError)  # type: ignore[untyped-decorator]
def _provider_failed(_error: httpx.HTTPError) -> Response[str]:
    return _problem(502, "Bad Gateway", "the provider did not accept the reschedule")


def _caller(authorization: str | None, provider: str, account: str) -> str:
    """The source whose API key this is, if it may use the provider's account."""
    registry = parameters.get_secret(
        f"{SECRETS_PREFIX}/sources", transform="json", max_age=SECRETS_MAX_AGE_SECONDS
    )
    scheme, _, token = (authorization or "").partition(" ")
    digest = hashlib.sha256(token.encode()).hexdigest()
    for name, source in registry["sources"].items():
        if scheme.lower() == "bearer" and any(
            hmac.compare_digest(digest, known) for known in source.get("api_key_sha256", [])
        ):
            if account not in source.get("providers", {}).get(provider, []):
                raise Refused(403, "Forbidden", f"source {name} may not use {provider} account {account}")
            return str(name)
    raise Refused(401, "Unauthorized", "unknown API key")


@idempotent_function(  # type: ignore[untyped-decorator]
    data_keyword_argument="request", persistence_store=persistence, config=idempotency
)
def move_booking(request: dict[str, Any]) -> dict[str, Any]:
    body = request["body"]
    secret = parameters.get_secret(
        f"{SECRETS_PREFIX}/providers/{PROVIDER}/{body['account']}",
        transform="json",
        max_age=SECRETS_MAX_AGE_SECONDS,
    )
    answer = provider_http.put(
        RESCHEDULE_PATH,
        json={"id": body["booking_id"], "dateTime": body["start"], "timeZone": body["timezone"]},
        headers={"Authorization": f"Bearer {secret['api_key']}"},
    )
    answer.raise_for_status()
    reschedule_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    dynamodb.put_item(
        TableName=RECORDS_TABLE,
        Item={
            "reschedule_id": {"S": reschedule_id},
            "booking_key": {"S": f"{PROVIDER}#{body['account']}#{body['booking_id']}"},
            "attempted_at": {"S": now.isoformat(timespec="milliseconds")},
            "source": {"S": request["source"]},
            "status": {"S": "succeeded"},
            "start": {"S": body["start"]},
            "expires_at": {"N": str(int(time.time()) + RECORD_RETENTION_SECONDS)},
        },
    )
    return {"reschedule_id": reschedule_id, "status": "succeeded", **body}


@app.post("/v1/reschedules")
def reschedule() -> Response[str]:
    event = app.current_event
    key = event.headers.get("idempotency-key")
    if not key:
        raise Refused(400, "Bad Request", "the Idempotency-Key header is required")
    try:
        body = RescheduleBody.model_validate_json(event.body or "")
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "body"
        raise Refused(422, "Unprocessable Content", f"{field}: {first['msg']}") from None
    source = _caller(event.headers.get("authorization"), body.provider, body.account)
    answer = move_booking(
        request={"source": source, "idempotency_key": key, "body": body.model_dump(mode="json")}
    )
    metrics.add_metric(name="Rescheduled", unit=MetricUnit.Count, value=1)
    return Response(status_code=200, content_type="application/json", body=json.dumps(answer))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    idempotency.register_lambda_context(context)
    return app.resolve(event, context)
