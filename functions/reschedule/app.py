"""Lambda handler: HTTP in, HTTP out. The work happens in the relay package."""

from __future__ import annotations

# isort: off
import relay.startup  # first: no garbage collection during init (see the module)

# isort: on
import base64
import binascii
import json
import time
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from relay import api_schema, cors, forms, intake
from relay.admission import Admission, Attempt, admit, identify
from relay.composition import build_service
from relay.dal import clients
from relay.errors import RelayError, malformed, too_large
from relay.settings import get_settings
from relay.sources import Registry

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
# Patch only what the relay calls: patching every library Tracer knows costs cold start.
tracer = Tracer(patch_modules=["botocore", "httpx"])
metrics = Metrics()
app = APIGatewayHttpResolver()

PROBLEM_JSON = "application/problem+json"
JSON = "application/json"

settings = get_settings()
service = build_service(settings, dynamodb=clients.dynamodb(), secretsmanager=clients.secretsmanager())
relay.startup.finished()


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


def _finish(response: Response[str]) -> Response[str]:
    """CORS headers on every answer to a browser-reachable route (set by the route, errors included)."""
    response.headers.update(app.context.get("cors_headers", {}))
    return response


def _to_page(location: str | None) -> Response[str] | None:
    """A plain HTML form post is sent on to the source's own page (303), never to a URL from the request."""
    if location is None or not app.context.get("wants_page"):
        return None
    return _finish(Response(status_code=303, headers={"Location": location}, body=""))


def _admit(sources: Registry, body: bytes) -> Admission:
    headers = app.current_event.headers
    attempt = Attempt()
    app.context["attempt"] = attempt
    try:
        admission = admit(sources, headers, body, now=time.time(), attempt=attempt)
    except RelayError as error:
        if attempt.caller is not None:  # authenticated, then refused (e.g. a body that does not parse)
            service.refused(attempt.caller, error)
        raise
    logger.append_keys(source=admission.caller.name)
    return admission


@app.post(
    "/v1/reschedules",
    summary="Move a booking to a new time",
    responses=api_schema.POST_RESPONSES,
    operation_id="createReschedule",
)
def create_reschedule() -> Response[str]:
    headers = app.current_event.headers
    sources = service.sources()
    app.context["cors_headers"] = cors.response_headers(cors.allowed_origin(sources, headers.get("origin")))
    app.context["wants_page"] = forms.wants_page(headers)
    body = _raw_body()
    if len(body) > intake.MAX_BODY_BYTES:
        raise too_large(f"The body is {len(body)} bytes; the limit is {intake.MAX_BODY_BYTES}.")
    admission = _admit(sources, body)
    link = admission.link
    if link is not None and link.spam:
        # Answered as if accepted, so the bot learns nothing; recorded, and no provider is called.
        reschedule_id = service.record_spam(
            admission.caller, provider=link.provider, account=link.account, booking_id=link.booking_id
        )
        metrics.add_metric(name="Spam", unit=MetricUnit.Count, value=1)
        page = _to_page(forms.success_location(link.source))
        return page or _finish(_json(202, {"reschedule_id": reschedule_id, "status": "accepted"}))
    result = service.reschedule(
        admission.caller,
        admission.fields,
        idempotency_key=admission.idempotency_key,
        context=app.lambda_context,
    )
    replayed = bool(result.get("replayed"))
    metrics.add_metric(name="Replayed" if replayed else "Rescheduled", unit=MetricUnit.Count, value=1)
    page = _to_page(forms.success_location(link.source if link else None))
    return page or _finish(_json(200, result, {"Idempotent-Replayed": "true"} if replayed else None))


@app.get(
    "/v1/reschedules/<reschedule_id>",
    summary="Read a stored attempt",
    responses=api_schema.GET_RESPONSES,
    operation_id="getReschedule",
)
def get_reschedule(reschedule_id: str) -> Response[str]:
    caller = identify(service.sources(), app.current_event.headers, now=time.time())
    logger.append_keys(source=caller.name)
    record = service.get(caller, reschedule_id)
    metrics.add_metric(name="Lookups", unit=MetricUnit.Count, value=1)
    return _json(200, record)


@app.route("/v1/reschedules", method="OPTIONS", include_in_schema=False)
def preflight() -> Response[str]:
    metrics.add_metric(name="Preflights", unit=MetricUnit.Count, value=1)
    origin = app.current_event.headers.get("origin")
    if not origin:  # not a CORS preflight
        return Response(status_code=204, headers={"Allow": "POST, OPTIONS"}, body="")
    allowed = cors.allowed_origin(service.sources(), origin)
    app.context["cors_headers"] = cors.response_headers(allowed)
    return Response(status_code=204, headers=cors.preflight_headers(allowed), body="")


def _problem(error: RelayError) -> Response[str]:
    attempt = app.context.get("attempt")
    page = _to_page(forms.error_location(attempt.form_source if attempt else None, error.code))
    if page is not None:
        return page
    headers = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    instance = app.current_event.request_context.request_id
    return _finish(
        Response(
            status_code=error.status,
            content_type=PROBLEM_JSON,
            body=json.dumps(error.problem(instance=instance)),
            headers=headers,
        )
    )


@app.exception_handler(RelayError)  # type: ignore[untyped-decorator]
def handle_relay_error(error: RelayError) -> Response[str]:
    attempt = app.context.get("attempt")
    if attempt is not None and attempt.caller is not None:
        logger.append_keys(source=attempt.caller.name)
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


# clear_state: a request's keys (its source) must not carry over to the container's next request.
@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_HTTP, log_event=False, clear_state=True
)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(raise_on_empty_metrics=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
