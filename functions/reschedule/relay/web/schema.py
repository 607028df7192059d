"""The HTTP API's documented shapes, for the OpenAPI document (openapi.json) and its conformance tests.

The success and record shapes are the use case's own models (relay.reschedule.attempts); the
request's fields come from the request model and the provider enum from the provider registry.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from relay.fields import ALIASES
from relay.providers import PROVIDERS
from relay.reschedule.attempts import QueuedAnswer, RescheduleRecord, RescheduleResult
from relay.reschedule.dry_run import DryRunResult
from relay.reschedule.history import RecentOutcomes, RescheduleHistory
from relay.reschedule.request import RescheduleRequest
from relay.reschedule.subscriptions import CreatedSubscription, SubscriptionList, SubscriptionRequest
from relay.web.decoding import JSON, MULTIPART, URLENCODED


class FieldError(BaseModel):
    model_config = ConfigDict(defer_build=True)  # built only when the OpenAPI document is generated

    field: str
    message: str
    code: str


class Problem(BaseModel):
    """RFC 9457 problem details, with a `code` to act on and the fields at fault."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None
    errors: list[FieldError] | None = None
    retry_after: int | None = None
    reschedule_id: str | None = None
    new_booking_id: str | None = None


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/problem+json": {"model": Problem}}}


_COMMON = {
    401: _problem("No, malformed or unknown credentials."),
    500: _problem("A bug: reported, never expected."),
    503: _problem("A dependency (Secrets Manager, DynamoDB) is unavailable, or the relay is not configured."),
}

POST_RESPONSES: dict[int, Any] = {
    200: {
        "description": "Rescheduled (or the stored answer to a repeat); with `dry_run`, what would be sent.",
        "content": {JSON: {"model": RescheduleResult | DryRunResult}},
    },
    202: {
        "description": "Accepted and queued (`Prefer: respond-async`, or the source's delivery mode); "
        "`Location` names the record to follow.",
        "content": {JSON: {"model": QueuedAnswer}},
    },
    303: {"description": "A plain HTML form post: sent on to the source's page (`status=ok|queued|error`)."},
    400: _problem("The body does not parse."),
    403: _problem("This source may not use the provider or account."),
    404: _problem("The provider has no such booking."),
    409: _problem("The same request is still being processed, or queued (sync callers; `Retry-After`)."),
    413: _problem("The body is over 64 KiB."),
    415: _problem("Unsupported content type, or a file upload."),
    422: _problem(
        "Invalid fields, refused by the provider, an idempotency key reused, or a signed request's "
        "Idempotency-Key other than its webhook-id."
    ),
    429: _problem(
        "The provider is rate limiting, or the source is over one of its quotas (requests per minute, "
        "moves of this booking today, queued backlog): `Retry-After`."
    ),
    502: _problem("The provider failed or refused the relay's token."),
    504: _problem("The provider did not answer in time."),
    **_COMMON,
}

GET_RESPONSES: dict[int, Any] = {
    200: {"description": "The stored attempt.", "content": {JSON: {"model": RescheduleRecord}}},
    404: _problem("No such reschedule for this source."),
    **_COMMON,
}

INTAKE_RESPONSES: dict[int, Any] = {
    200: {
        "description": "Rescheduled, or the stored answer to a redelivery (`Idempotent-Replayed: true`).",
        "content": {JSON: {"model": RescheduleResult}},
    },
    202: {
        "description": "Accepted and queued: the provider could not take it now; the relay retries.",
        "content": {JSON: {"model": QueuedAnswer}},
    },
    400: _problem("The body does not parse."),
    401: _problem("A missing, malformed, wrong or expired signature, or a wrong URL token."),
    403: _problem("This source may not use the provider or account."),
    404: _problem("No form intake with this name, or the provider has no such booking."),
    409: _problem("The same delivery is still being processed (`Retry-After`)."),
    413: _problem("The body is over 64 KiB."),
    415: _problem("Unsupported content type, or a file upload."),
    422: _problem("The mapping found nothing for a field (named with its expression), or invalid fields."),
    429: _problem("The provider is rate limiting (sync delivery; auto delivery queues it instead)."),
    502: _problem("The provider failed or refused the relay's token."),
    504: _problem("The provider did not answer in time (sync delivery)."),
    500: _COMMON[500],
    503: _COMMON[503],
}

_HTML = {"text/html": {"schema": {"type": "string"}}}

PAGE_RESPONSES: dict[int, Any] = {
    200: {"description": "The page.", "content": _HTML},
    401: {"description": "The link is not valid or has expired: a page that says so.", "content": _HTML},
    404: {"description": "No such reschedule for this link: a page that says so.", "content": _HTML},
    503: _COMMON[503],
}

HISTORY_RESPONSES: dict[int, Any] = {
    200: {
        "description": "This source's attempts, newest first.",
        "content": {JSON: {"model": RescheduleHistory}},
    },
    404: _problem("No such provider."),
    422: _problem("A booking id, limit or cursor that is not valid."),
    **_COMMON,
}

DELETE_RESPONSES: dict[int, Any] = {
    200: {
        "description": "Cancelled: never delivered, its key released. Accepted at any moment before "
        "a provider call has succeeded; no provider call starts after this answer.",
        "content": {JSON: {"model": RescheduleRecord}},
    },
    202: {
        "description": "A provider call was under way and had not ended within the wait: no further "
        "call starts; the record (`queued`, `stop_requested`) ends `cancelled`, or `succeeded` if that "
        "call moved the booking (the cancel then came too late). Follow it with GET.",
        "content": {JSON: {"model": RescheduleRecord}},
    },
    404: _problem("No such reschedule for this source."),
    409: _problem(
        "`cancel_too_late`: a provider call under way when the cancel came moved the booking (the "
        "record says `succeeded`); `not_queued`: already done."
    ),
    **_COMMON,
}

RECENT_RESPONSES: dict[int, Any] = {
    200: {
        "description": "This source's newest final outcomes (succeeded, failed), newest first.",
        "content": {JSON: {"model": RecentOutcomes}},
    },
    422: _problem("A status or limit that is not valid."),
    **_COMMON,
}


class ProviderAccess(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    provider: str
    display_name: str
    accounts: list[str]


class SourceProfile(BaseModel):
    """Who is calling: the source's name and kind, and what it may move. Never a secret."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    name: str
    kind: str
    providers: list[ProviderAccess]


ME_RESPONSES: dict[int, Any] = {
    200: {"description": "The calling source.", "content": {JSON: {"model": SourceProfile}}},
    **_COMMON,
}


def source_profile(name: str, kind: str, providers: dict[str, list[str]]) -> dict[str, Any]:
    """GET /v1/me's answer: each provider the source may use, with its display name and accounts."""
    return {
        "name": name,
        "kind": kind,
        "providers": [
            {
                "provider": provider,
                "display_name": PROVIDERS[provider].display_name if provider in PROVIDERS else provider,
                "accounts": sorted(accounts),
            }
            for provider, accounts in sorted(providers.items())
        ],
    }


SUBSCRIBE_RESPONSES: dict[int, Any] = {
    201: {
        "description": "Subscribed; `secret` signs its events and is shown only here.",
        "content": {JSON: {"model": CreatedSubscription}},
    },
    400: _problem("The body is not a JSON object."),
    403: _problem("Event subscriptions are off for this source (the registry's `subscriptions`)."),
    409: _problem("The source has as many subscriptions as it may have."),
    413: _problem("The body is over 64 KiB."),
    422: _problem("A url or events that is not valid, or an unknown field."),
    **_COMMON,
}

SUBSCRIPTIONS_RESPONSES: dict[int, Any] = {
    200: {
        "description": "This source's subscriptions (never their secrets), oldest first.",
        "content": {JSON: {"model": SubscriptionList}},
    },
    **_COMMON,
}

UNSUBSCRIBE_RESPONSES: dict[int, Any] = {
    204: {"description": "Deleted: no more events go to its URL."},
    404: _problem("No such subscription for this source."),
    **_COMMON,
}


def subscription_request_body() -> dict[str, Any]:
    """POST /v1/subscriptions's body (JSON only)."""
    schema = SubscriptionRequest.model_json_schema()
    schema["additionalProperties"] = False
    return {"required": True, "content": {JSON: {"schema": schema}}}


_FIELD_SCHEMAS: dict[str, dict[str, Any]] = {
    "provider": {"type": "string", "enum": sorted(PROVIDERS), "description": "Case-insensitive."},
    "account": {"type": "string"},
    "booking_id": {
        "type": ["string", "integer"],
        "description": "; ".join(f"{p.display_name}: {p.booking_id_format}" for p in PROVIDERS.values())
        + ".",
    },
    "start": {"type": "string", "description": "ISO 8601, with an offset or as wall time in `timezone`."},
    "date": {"type": "string", "description": "YYYY-MM-DD, with `time`, instead of `start`."},
    "time": {"type": "string", "description": "HH:MM or H:MM AM/PM, with `date`."},
    "timezone": {"type": "string", "description": "IANA time zone name (case-insensitive)."},
    "end": {"type": "string"},
    "duration_minutes": {"type": ["integer", "string"]},
    "reason": {"type": "string"},
    "notes": {"type": "string"},
    "user_id": {"type": ["integer", "string"]},
    "rescheduled_by": {
        "type": "string",
        "format": "email",
        "description": "Cal.com: who reschedules (the event type owner's email auto-confirms).",
    },
    "time_format": {"type": ["integer", "string"], "description": "12 or 24"},
    "answers": {"type": "object", "additionalProperties": {"type": "string"}},
    "dry_run": {
        "type": ["boolean", "string"],
        "description": "true (form: true or 1): check, answer with the provider request, send nothing.",
    },
}


def request_body() -> dict[str, Any]:
    """POST /v1/reschedules's body: canonical fields and their aliases; nothing else is accepted."""
    if set(_FIELD_SCHEMAS) != set(RescheduleRequest.model_fields) or set(ALIASES) != set(_FIELD_SCHEMAS):
        raise RuntimeError("the documented request fields differ from RescheduleRequest's or the aliases")
    properties = {alias: _FIELD_SCHEMAS[canonical] for canonical, names in ALIASES.items() for alias in names}
    schema = {"type": "object", "properties": properties, "additionalProperties": False}
    content = {media: {"schema": schema} for media in (JSON, URLENCODED, MULTIPART)}
    return {"required": True, "content": content}
