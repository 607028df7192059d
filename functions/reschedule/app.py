"""Lambda handler: HTTP in, HTTP out. The work happens in the relay package."""

from __future__ import annotations

# isort: off
import relay.startup  # first: no garbage collection during init (see the module)
import relay.prefetch  # next: the caller registry is read while the rest of init imports

# isort: on
import base64
import binascii
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from relay import snapstart
from relay.callers import intake, links
from relay.callers.admission import Admission, Attempt, admit, identify
from relay.callers.registry import Caller, SignedLinkSource, authenticate
from relay.callers.signatures import request_target
from relay.command import RescheduleCommand
from relay.composition import Relay, build
from relay.dal import clients
from relay.deadline import Deadline
from relay.errors import RelayError, internal_error, malformed, not_configured, route_not_found, too_large
from relay.logs import door_logger
from relay.reschedule import history, modes
from relay.reschedule.attempts import QUEUED, Booking
from relay.reschedule.normalise import booking_of, command_from
from relay.reschedule.queries import not_queued
from relay.settings import get_settings, link_max_lifetime_seconds
from relay.tracing import door_tracer
from relay.web import cors, decoding, forms, pages, schema
from relay.web.http import Response, Router
from relay.web.problems import json_response, problem_response

if TYPE_CHECKING:
    from collections.abc import Callable

    from aws_lambda_powertools.utilities.typing import LambdaContext

    from relay.dal.records import RecordStore
    from relay.dal.secrets import Prefetch
    from relay.reschedule.subscriptions import Subscriptions

logger = door_logger()
# Patch only what the relay calls: patching every library Tracer knows costs cold start.
tracer = door_tracer(patch_modules=["botocore", "httpx"])
metrics = Metrics()


@dataclass
class RequestState:
    """What one request's handling carries from its route to its answer (new for each request)."""

    # CORS headers for every answer of a browser-reachable route, errors included.
    cors_headers: dict[str, str] = field(default_factory=dict)
    # A plain HTML form post: answers are redirects to the source's pages.
    wants_page: bool = False
    # Who is calling, as far as admission got (for the refusal's record and its page).
    attempt: Attempt | None = None


app: Router[RequestState] = Router(RequestState)

settings = get_settings()


def _build_relay(prefetched: Prefetch | None) -> Relay:
    return build(
        settings,
        dynamodb=clients.dynamodb(),
        secretsmanager=clients.secretsmanager(),
        sqs=clients.sqs,
        prefetched=prefetched,
    )


relay_app = _build_relay(relay.prefetch.REGISTRY)
service = relay_app.service


def _rebuild_after_restore() -> None:
    """SnapStart (relay/snapstart.py): the container's relay again, from new clients (and no prefetch)."""
    global relay_app, service  # noqa: PLW0603 - the door's one relay per container, replaced whole
    relay_app = _build_relay(None)
    service = relay_app.service


# Before a snapshot: no registry read under way in it (its socket would be restored in every copy).
snapstart.register(_rebuild_after_restore, before_snapshot=relay.prefetch.settle)
relay.startup.finished()


def _raw_body() -> bytes:
    request = app.current
    body = request.body
    if request.is_base64:
        if len(body) > (decoding.MAX_BODY_BYTES * 4) // 3 + 4:
            raise too_large(f"The body is larger than {decoding.MAX_BODY_BYTES} bytes.")
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise malformed("The body is not valid base64.") from None
    return body.encode("utf-8", errors="surrogateescape")


def _finish(response: Response) -> Response:
    """CORS headers on every answer to a browser-reachable route (set by the route, errors included)."""
    response.headers.update(app.state.cors_headers)
    return response


def _to_page(location: str | None) -> Response | None:
    """A plain HTML form post is sent on to the source's own page (303), never to a URL from the request."""
    if location is None or not app.state.wants_page:
        return None
    return _finish(Response(status_code=303, headers={"Location": location}, body=""))


def _admit(body: bytes) -> Admission:
    headers = app.current.headers
    attempt = Attempt()
    app.state.attempt = attempt
    try:
        # Against the cached registry, or one read again when it does not know the credential.
        own = _own_origin()
        admission = relay_app.sources.admit(
            lambda registry: admit(
                registry,
                headers,
                body,
                now=time.time(),
                attempt=attempt,
                own_origin=own,
                max_link_lifetime_seconds=link_max_lifetime_seconds(settings),
            )
        )
    except RelayError as error:
        if attempt.caller is not None:  # authenticated, then refused (e.g. a body that does not parse)
            raise service.refuse(attempt.caller.name, error) from None
        raise
    logger.append_keys(source=admission.caller.name)
    return admission


def _own_origin() -> str | None:
    """The relay's own origin as the browser sees it: where its hosted page lives."""
    headers = app.current.headers
    host = headers.get("host")
    if not host:
        return None
    scheme = headers.get("x-forwarded-proto", "https").split(",")[0].strip().lower()
    return f"{scheme}://{host.lower()}"


def _command(caller: Caller, fields: dict[str, Any]) -> RescheduleCommand:
    """Canonicalise, parse, normalise and authorise at the door; a refusal is recorded with what is known."""
    command: RescheduleCommand | None = None
    try:
        command = command_from(fields, allowed_providers=caller.allowed_providers, settings=settings)
        caller.authorise(command.provider, command.account)
    except RelayError as error:
        # Not built, but its booking may be known: then the refusal shows in that booking's history.
        booking = None if command else booking_of(fields, allowed_providers=caller.allowed_providers)
        raise service.refuse(caller.name, error, command, booking=booking) from None
    return command


@app.post(
    "/v1/reschedules",
    summary="Move a booking to a new time",
    responses=schema.POST_RESPONSES,
    operation_id="createReschedule",
)
def create_reschedule() -> Response:
    headers = app.current.headers
    sources = relay_app.sources.current()
    app.state.cors_headers = cors.response_headers(sources.allowed_origin(headers.get("origin")))
    app.state.wants_page = forms.wants_page(headers)
    body = _raw_body()
    if len(body) > decoding.MAX_BODY_BYTES:
        raise too_large(f"The body is {len(body)} bytes; the limit is {decoding.MAX_BODY_BYTES}.")
    admission = _admit(body)
    link = admission.link
    if link is not None and link.spam:
        # Answered as if accepted, so the bot learns nothing; recorded, and no provider is called.
        booking = Booking(link.provider, link.account, link.booking_id)
        reschedule_id = service.record_spam(admission.caller.name, booking)
        metrics.add_metric(name="Spam", unit=MetricUnit.Count, value=1)
        page = _to_page(forms.success_location(link.source.success_url))
        return page or _finish(json_response(202, {"reschedule_id": reschedule_id, "status": "accepted"}))
    command = _command(admission.caller, admission.fields)
    if command.dry_run:
        answer = service.dry_run(
            command, source=admission.caller.name, idempotency_key=admission.idempotency_key
        )
        metrics.add_metric(name="DryRuns", unit=MetricUnit.Count, value=1)
        return _finish(json_response(200, answer))
    asked_async = modes.prefers_async(headers.get("prefer"))
    mode = modes.choose(
        prefer_header=headers.get("prefer"),
        source_delivery=admission.caller.delivery,
        source_kind=admission.caller.kind,
        queue_available=service.queue_available,
    )
    result = service.reschedule(
        command,
        source=admission.caller.name,
        idempotency_key=admission.idempotency_key,
        deadline=Deadline.for_invocation(app.current.lambda_context, settings.deadline_safety_margin_seconds),
        mode=mode,
        notify=admission.caller.notify,
        quotas=admission.caller.quotas,
    )
    replayed = bool(result.get("replayed"))
    if result.get("status") == QUEUED:
        return _queued(result, replayed=replayed, asked_async=asked_async, link=link)
    metrics.add_metric(name="Replayed" if replayed else "Rescheduled", unit=MetricUnit.Count, value=1)
    page = _to_page(forms.success_location(link.source.success_url if link else None, result))
    return page or _finish(json_response(200, result, {"Idempotent-Replayed": "true"} if replayed else None))


def _queued(result: dict[str, Any], *, replayed: bool, asked_async: bool, link: Any) -> Response:
    """202 Accepted: the queue delivers it; the record's URL tells how it went (a form goes to its page)."""
    metrics.add_metric(name="Replayed" if replayed else "Queued", unit=MetricUnit.Count, value=1)
    page = _to_page(forms.queued_location(link.source.success_url if link else None))
    if page is not None:
        return page
    body = {k: v for k, v in result.items() if k != "replayed"}
    headers = {"Location": f"/v1/reschedules/{body['reschedule_id']}"}
    if asked_async:
        headers["Preference-Applied"] = modes.PREFER_ASYNC
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return _finish(json_response(202, body, headers))


def _intake(source: str, token: str | None) -> Response:
    """A form tool's own webhook: verified its way, mapped, then moved like any request (auto delivery)."""
    body = _raw_body()
    if len(body) > decoding.MAX_BODY_BYTES:
        raise too_large(f"The body is {len(body)} bytes; the limit is {decoding.MAX_BODY_BYTES}.")
    attempt = Attempt()
    app.state.attempt = attempt

    def known(caller: Caller) -> None:
        attempt.caller = caller

    try:
        # A source added seconds ago is found by reading the registry again (as for any credential).
        admission = relay_app.sources.admit(
            lambda registry: intake.admit(
                registry,
                source,
                token,
                app.current.headers,
                body,
                now=time.time(),
                on_caller=known,
            )
        )
    except RelayError as error:
        if attempt.caller is not None:  # verified, then refused (a body or mapping that does not fit)
            raise service.refuse(attempt.caller.name, error) from None
        raise
    caller = admission.caller
    logger.append_keys(source=caller.name)
    command = _command(caller, admission.fields)
    mode = modes.choose(
        prefer_header=None,
        source_delivery=caller.delivery,
        source_kind=caller.kind,
        queue_available=service.queue_available,
    )
    result = service.reschedule(
        command,
        source=caller.name,
        idempotency_key=admission.delivery_id,
        deadline=Deadline.for_invocation(app.current.lambda_context, settings.deadline_safety_margin_seconds),
        mode=mode,
        notify=caller.notify,
        quotas=caller.quotas,
    )
    replayed = bool(result.get("replayed"))
    if result.get("status") == QUEUED:
        return _queued(result, replayed=replayed, asked_async=False, link=None)
    metrics.add_metric(name="Replayed" if replayed else "Rescheduled", unit=MetricUnit.Count, value=1)
    return json_response(200, result, {"Idempotent-Replayed": "true"} if replayed else None)


@app.post(
    "/v1/intake/<source>",
    summary="A signed form tool's own webhook (Typeform, Tally, Webflow), mapped to a reschedule",
    responses=schema.INTAKE_RESPONSES,
    operation_id="intakeFormWebhook",
)
def intake_signed(source: str) -> Response:
    return _intake(source, None)


@app.post(
    "/v1/intake/<source>/<token>",
    summary="An unsigned form tool's own webhook (Jotform, Fillout), its secret token in the path",
    responses=schema.INTAKE_RESPONSES,
    operation_id="intakeFormWebhookWithToken",
)
def intake_with_token(source: str, token: str) -> Response:
    return _intake(source, token)


def _link_query() -> dict[str, str]:
    request = app.current
    return {name: value for name in pages.LINK_QUERY_FIELDS if (value := request.query(name)) is not None}


def _brand(name: str, source: SignedLinkSource) -> pages.Brand:
    return pages.Brand(
        name=source.display_name or name,
        colour=source.brand_colour or pages.DEFAULT_BRAND_COLOUR,
        logo_url=source.logo_url,
    )


def _page_link(
    fields: dict[str, str],
) -> tuple[pages.Brand | None, Callable[..., links.LinkAdmission]]:
    """A hosted page's brand (its source's, when the link names one) and the link's verification."""
    registry = relay_app.sources.current()
    named = links.named_source(registry, fields)
    max_lifetime = link_max_lifetime_seconds(settings)

    def verify(*, check_expiry: bool) -> links.LinkAdmission:
        return links.verify(
            registry, fields, now=time.time(), check_expiry=check_expiry, max_lifetime_seconds=max_lifetime
        )

    return (_brand(*named) if named else None), verify


def _current_time(link: links.LinkAdmission) -> pages.CurrentTime | None:
    """The booking's start from its provider, when the relay can read it; the page works without it."""
    if relay_app.booking_times is None:
        return None
    found = relay_app.booking_times.read_booking_start(link.provider, link.account, link.booking_id)
    return None if found is None else pages.CurrentTime(*found)


@app.get(
    "/v1/pages/reschedule",
    summary="The hosted reschedule page a signed link opens (HTML)",
    responses=schema.PAGE_RESPONSES,
    operation_id="reschedulePage",
)
def reschedule_page() -> Response:
    fields = _link_query()
    brand, verify = _page_link(fields)
    try:
        link = verify(check_expiry=True)
    except RelayError as error:
        metrics.add_metric(name="Refused", unit=MetricUnit.Count, value=1)
        return pages.refusal_page(error.status, error.code, brand)
    assert brand is not None  # noqa: S101 - a verified link names its source
    # A day's slack: the invitee's today may still be yesterday in UTC.
    today = (datetime.now(UTC) - timedelta(days=1)).date()
    # Without script the form is a plain post: the relay then redirects to the source's own pages.
    targets = tuple(url for url in (link.source.success_url, link.source.error_url) if url)
    return pages.form_page(
        fields,
        brand,
        honeypot=link.source.honeypot,
        current=_current_time(link),
        today=today,
        form_targets=targets,
    )


@app.get(
    "/v1/pages/reschedule/result",
    summary="The hosted page's result: the stored record of one reschedule, for its own link (HTML)",
    responses=schema.PAGE_RESPONSES,
    operation_id="rescheduleResultPage",
)
def reschedule_result_page() -> Response:
    fields = _link_query()
    brand, verify = _page_link(fields)
    try:
        # The link's own result stays readable after it expires: the token still names the booking.
        link = verify(check_expiry=False)
        record = relay_app.queries.get_stored(link.caller.name, app.current.query("reschedule_id") or "")
    except RelayError as error:
        return pages.refusal_page(error.status, error.code, brand)
    booked = (record.get("provider"), str(record.get("booking_id")), record.get("account", "default"))
    if booked != (link.provider, link.booking_id, link.account):  # another booking's record: not this link's
        return pages.refusal_page(404, "reschedule_not_found", brand)
    assert brand is not None  # noqa: S101 - a verified link names its source
    return pages.result_page(record, brand, fields)


def _caller() -> Caller:
    """The authenticated source of a read or cancel request (API key or signature), in the logs."""
    request = app.current
    headers = request.headers
    # A signature must name this method, path and query (relay/callers/signatures.py).
    target = request_target(request.method, request.path, str(request.event.get("rawQueryString") or ""))
    caller = relay_app.sources.admit(
        lambda registry: identify(registry, headers, now=time.time(), request_target=target)
    )
    logger.append_keys(source=caller.name)
    return caller


@app.delete(
    "/v1/reschedules/<reschedule_id>",
    summary="Cancel a queued reschedule",
    responses=schema.DELETE_RESPONSES,
    operation_id="cancelReschedule",
)
def cancel_reschedule(reschedule_id: str) -> Response:
    caller = _caller()
    if relay_app.deliveries is None:  # nothing is ever queued without a queue
        raise not_queued(relay_app.queries.get(caller.name, reschedule_id).get("status"))
    deadline = Deadline.for_invocation(app.current.lambda_context, settings.deadline_safety_margin_seconds)
    cancelled = relay_app.queries.cancel(caller.name, reschedule_id, deadline)
    if cancelled.get("status") == QUEUED:  # a provider call was under way and has not ended yet
        metrics.add_metric(name="CancelsPending", unit=MetricUnit.Count, value=1)
        return json_response(202, cancelled)
    metrics.add_metric(name="Cancelled", unit=MetricUnit.Count, value=1)
    return json_response(200, cancelled)


@app.get(
    "/v1/reschedules/<reschedule_id>",
    summary="Read a stored attempt",
    responses=schema.GET_RESPONSES,
    operation_id="getReschedule",
)
def get_reschedule(reschedule_id: str) -> Response:
    caller = _caller()
    record = relay_app.queries.get(caller.name, reschedule_id)
    metrics.add_metric(name="Lookups", unit=MetricUnit.Count, value=1)
    return json_response(200, record)


@app.get(
    "/v1/bookings/<provider>/<booking_id>/reschedules",
    summary="A booking's attempts, newest first",
    responses=schema.HISTORY_RESPONSES,
    operation_id="listBookingReschedules",
)
def list_booking_reschedules(provider: str, booking_id: str) -> Response:
    caller = _caller()
    request = app.current
    page = relay_app.queries.history(
        caller.name,
        provider,
        booking_id,
        limit=request.query("limit"),
        cursor=request.query("cursor"),
    )
    metrics.add_metric(name="Lookups", unit=MetricUnit.Count, value=1)
    return json_response(200, page)


@app.get(
    "/v1/reschedules",
    summary="This source's recent outcomes, newest first",
    responses=schema.RECENT_RESPONSES,
    operation_id="listReschedules",
)
def list_reschedules() -> Response:
    caller = _caller()
    request = app.current
    answer = history.recent_outcomes(
        _records(), caller.name, status=request.query("status"), limit=request.query("limit")
    )
    metrics.add_metric(name="Lookups", unit=MetricUnit.Count, value=1)
    return json_response(200, answer)


@app.get(
    "/v1/me",
    summary="Who is calling, and what it may move",
    responses=schema.ME_RESPONSES,
    operation_id="getMe",
)
def get_me() -> Response:
    caller = _caller()
    return json_response(200, schema.source_profile(caller.name, caller.kind, caller.providers))


def _subscriber() -> tuple[str, Subscriptions]:
    """Subscriptions belong to API-key sources (the registry turns them on per source)."""
    headers = app.current.headers
    caller = relay_app.sources.admit(lambda registry: authenticate(registry, headers))
    logger.append_keys(source=caller.name)
    if relay_app.subscriptions is None:
        raise not_configured("subscriptions are not wired.")
    return caller.name, relay_app.subscriptions


def _records() -> RecordStore:
    if relay_app.records is None:
        raise not_configured("the reschedules table is not wired.")
    return relay_app.records


@app.post(
    "/v1/subscriptions",
    summary="Subscribe a URL to outcome events (REST hook)",
    responses=schema.SUBSCRIBE_RESPONSES,
    operation_id="createSubscription",
)
def create_subscription() -> Response:
    source, subscriptions = _subscriber()
    body = _raw_body()
    if len(body) > decoding.MAX_BODY_BYTES:
        raise too_large(f"The body is {len(body)} bytes; the limit is {decoding.MAX_BODY_BYTES}.")
    created = subscriptions.create(source, body)
    metrics.add_metric(name="Subscribed", unit=MetricUnit.Count, value=1)
    return json_response(201, created, {"Location": f"/v1/subscriptions/{created['id']}"})


@app.get(
    "/v1/subscriptions",
    summary="This source's subscriptions",
    responses=schema.SUBSCRIPTIONS_RESPONSES,
    operation_id="listSubscriptions",
)
def list_subscriptions() -> Response:
    source, subscriptions = _subscriber()
    return json_response(200, subscriptions.listing(source))


@app.delete(
    "/v1/subscriptions/<subscription_id>",
    summary="Unsubscribe",
    responses=schema.UNSUBSCRIBE_RESPONSES,
    operation_id="deleteSubscription",
)
def delete_subscription(subscription_id: str) -> Response:
    source, subscriptions = _subscriber()
    subscriptions.delete(source, subscription_id)
    metrics.add_metric(name="Unsubscribed", unit=MetricUnit.Count, value=1)
    return Response(status_code=204, body="")


@app.route("/v1/reschedules", method="OPTIONS", include_in_schema=False)
def preflight() -> Response:
    metrics.add_metric(name="Preflights", unit=MetricUnit.Count, value=1)
    origin = app.current.headers.get("origin")
    if not origin:  # not a CORS preflight
        return Response(status_code=204, headers={"Allow": "POST, OPTIONS"}, body="")
    allowed = relay_app.sources.current().allowed_origin(origin)
    app.state.cors_headers = cors.response_headers(allowed)
    return Response(status_code=204, headers=cors.preflight_headers(allowed), body="")


def _problem(error: RelayError) -> Response:
    attempt = app.state.attempt
    form_source = attempt.form_source if attempt else None
    page = _to_page(forms.error_location(form_source.error_url if form_source else None, error.code))
    if page is not None:
        return page
    return _finish(problem_response(error, app.current.request_id, settings.problem_docs_url))


def handle_relay_error(error: RelayError) -> Response:
    attempt = app.state.attempt
    if attempt is not None and attempt.caller is not None:
        logger.append_keys(source=attempt.caller.name)
    refused: dict[str, Any] = {"status": error.status, "reason": error.code}
    if error.log_detail:  # the operator's part (e.g. which secret is missing), never the caller's
        refused["cause"] = error.log_detail
    logger.info("request refused", extra=refused)
    metrics.add_metric(name="Refused", unit=MetricUnit.Count, value=1)
    if error.code.startswith("provider_") and error.status >= 500:
        metrics.add_metric(name="ProviderFailures", unit=MetricUnit.Count, value=1)
    return _problem(error)


def handle_not_found() -> Response:
    metrics.add_metric(name="Refused", unit=MetricUnit.Count, value=1)
    return _problem(route_not_found())


def handle_error(error: Exception) -> Response:
    if isinstance(error, RelayError):
        return handle_relay_error(error)
    # A 500 is a bug: log it with its traceback, tell the caller nothing internal.
    logger.exception("unhandled error", extra={"error": type(error).__name__})
    metrics.add_metric(name="Bugs", unit=MetricUnit.Count, value=1)
    return _problem(internal_error())


# clear_state: a request's keys (its source) must not carry over to the container's next request.
@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_HTTP, log_event=False, clear_state=True
)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(raise_on_empty_metrics=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context, unrouted=handle_not_found, on_error=handle_error)
