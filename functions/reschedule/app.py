"""Lambda handler: HTTP in, HTTP out. The work happens in the relay package."""

from __future__ import annotations

import base64
import binascii
import json
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from relay import api_schema, intake
from relay.composition import build_service
from relay.dal import clients
from relay.errors import RelayError, malformed, too_large
from relay.settings import get_settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
tracer = Tracer(
    patch_modules=["botocore", "httpx"]
)  # only what the relay calls: patching all costs cold start
metrics = Metrics()
app = APIGatewayHttpResolver()

PROBLEM_JSON = "application/problem+json"
JSON = "application/json"

settings = get_settings()
service = build_service(settings, dynamodb=clients.dynamodb(), secretsmanager=clients.secretsmanager())


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response[str]:
    return Response(status_code=status, content_type=JSON, body=json.dumps(body), headers=headers or {})


def _raw_body() -> bytes:
    event = app.current_event
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        if len(body) > (intake.MAX_BODY_BYTES * 4) // 3 + 4:
            raise too_large(f"The body is larger than {intake.MAX_BODY_BYTES} bytes.")
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise malformed("The body is not valid base64.") from None
    return body.encode("utf-8", errors="surrogateescape")


@app.post(
    "/v1/reschedules",
    summary="Move a booking to a new time",
    responses=api_schema.POST_RESPONSES,
    operation_id="createReschedule",
)
def create_reschedule() -> Response[str]:
    body = _raw_body()
    if len(body) > intake.MAX_BODY_BYTES:
        raise too_large(f"The body is {len(body)} bytes; the limit is {intake.MAX_BODY_BYTES}.")
    headers = app.current_event.headers
    caller = service.authenticate(headers)
    logger.append_keys(source=caller.name)
    try:
        fields = intake.decode_body(body, headers.get("content-type"))
    except RelayError as error:
        service.refused(caller, error)
        raise
    result = service.reschedule(
        caller, fields, idempotency_key=headers.get("idempotency-key"), context=app.lambda_context
    )
    replayed = bool(result.get("replayed"))
    metrics.add_metric(name="Replayed" if replayed else "Rescheduled", unit=MetricUnit.Count, value=1)
    return _json(200, result, {"Idempotent-Replayed": "true"} if replayed else None)


@app.get(
    "/v1/reschedules/<reschedule_id>",
    summary="Read a stored attempt",
    responses=api_schema.GET_RESPONSES,
    operation_id="getReschedule",
)
def get_reschedule(reschedule_id: str) -> Response[str]:
    caller = service.authenticate(app.current_event.headers)
    record = service.get(caller, reschedule_id)
    metrics.add_metric(name="Lookups", unit=MetricUnit.Count, value=1)
    return _json(200, record)


@app.route("/v1/reschedules", method="OPTIONS", include_in_schema=False)
def preflight() -> Response[str]:
    # No browser origins are allowed yet: answer without Access-Control-Allow-Origin, so browsers refuse.
    return Response(status_code=204, headers={"Allow": "POST, OPTIONS"}, body="")


def _problem(error: RelayError) -> Response[str]:
    headers = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    instance = app.current_event.request_context.request_id
    return Response(
        status_code=error.status,
        content_type=PROBLEM_JSON,
        body=json.dumps(error.problem(instance=instance)),
        headers=headers,
    )


@app.exception_handler(RelayError)  # type: ignore[untyped-decorator]
def handle_relay_error(error: RelayError) -> Response[str]:
    logger.info("request refused", extra={"status": error.status, "reason": error.code})
    metrics.add_metric(name="Refused", unit=MetricUnit.Count, value=1)
    if error.code.startswith("provider_") and error.status >= 500:
        metrics.add_metric(name="ProviderFailures", unit=MetricUnit.Count, value=1)
    return _problem(error)


@app.not_found
def handle_not_found(_error: NotFoundError) -> Response[str]:
    metrics.add_metric(name="Refused", unit=MetricUnit.Count, value=1)
    return _problem(RelayError("No such route.", 404, "route_not_found", "Not found"))


@app.exception_handler(Exception)  # type: ignore[untyped-decorator]
def handle_bug(error: Exception) -> Response[str]:
    # A 500 is a bug: log it with its traceback, tell the caller nothing internal.
    logger.exception("unhandled error", extra={"error": type(error).__name__})
    metrics.add_metric(name="Bugs", unit=MetricUnit.Count, value=1)
    return _problem(RelayError("Something went wrong on our side.", 500, "internal_error", "Internal error"))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(raise_on_empty_metrics=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
