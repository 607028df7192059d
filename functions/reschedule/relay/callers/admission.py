"""Who is calling: the proof a request carries picks the one check it gets.

1. Any `webhook-id` / `webhook-timestamp` / `webhook-signature` header: a Standard Webhooks
   signature, verified over the raw body before it is parsed (relay/callers/signatures.py).
2. Else `Authorization` or `X-Api-Key`: an API key (relay/callers/registry.py).
3. Else a body with `source`, `token` or `expires`: a signed form link (relay/callers/links.py); the form's
   Origin, when the browser sends one, must be one the source allows.
4. Else 401 `missing_credentials`.

Reads and cancels (`GET`, `DELETE`) take a header proof only: an API key, or a signature whose
signed content names the request: `{webhook-id}.{webhook-timestamp}.{METHOD} {path}[?{query}]`
(relay/callers/signatures.py `request_target`), so one read's headers prove nothing else.

A signed POST's idempotency key is its `webhook-id`: an `Idempotency-Key` beside it must equal it
(else 422), so a seen signed POST cannot be sent again under a fresh, unsigned key.

One request gets one check: a wrong signature is not retried as an API key. Nothing is stored for a
request that fails here; the handler logs one line (status and reason code, never the body).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from relay.callers import links, signatures
from relay.callers.links import LinkAdmission
from relay.callers.registry import LINK_FIELDS, Caller, Registry, SignedLinkSource, authenticate
from relay.errors import RelayError, forbidden, unauthenticated, unprocessable
from relay.web import decoding


@dataclass(frozen=True)
class Admission:
    caller: Caller
    # The decoded body, without any proof fields: what validation gets.
    fields: dict[str, Any]
    # The caller's Idempotency-Key, else a signed request's webhook-id.
    idempotency_key: str | None
    link: LinkAdmission | None = None


@dataclass
class Attempt:
    """What is known about a request so far, for answering (and logging) a failure that comes later."""

    # The form source the body names, even before its link is checked: its error page is the answer.
    form_source: SignedLinkSource | None = None
    # The authenticated caller, once known (a body that fails to decode after that is still theirs).
    caller: Caller | None = None


def _missing() -> RelayError:
    return unauthenticated(
        "Authenticate with 'Authorization: Bearer <key>', a Standard Webhooks signature, "
        "or the fields of a signed reschedule link.",
        "missing_credentials",
    )


def _presents_api_key(headers: Mapping[str, str]) -> bool:
    return bool(headers.get("authorization", "").strip() or headers.get("x-api-key", "").strip())


def admit(
    registry: Registry,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    attempt: Attempt | None = None,
    own_origin: str | None = None,
    max_link_lifetime_seconds: int = links.DEFAULT_LINK_MAX_LIFETIME_SECONDS,
) -> Admission:
    """`own_origin`: the relay's own scheme://host; its hosted page (GET /v1/pages/reschedule) may post."""
    attempt = attempt or Attempt()
    content_type = headers.get("content-type")
    if signatures.carries_signature(headers):
        signed = signatures.verify(registry, headers, body, now=now)
        attempt.caller = signed.caller
        key = _signed_key(headers.get("idempotency-key"), signed.webhook_id)
        fields = decoding.decode_body(body, content_type)
        return Admission(signed.caller, fields, key)
    if _presents_api_key(headers):
        attempt.caller = authenticate(registry, headers)
        fields = decoding.decode_body(body, content_type)
        return Admission(attempt.caller, fields, headers.get("idempotency-key"))
    try:
        fields = decoding.decode_body(body, content_type)
    except RelayError:
        raise _missing() from None  # not a body a signed link could be in
    if not any(name in fields for name in LINK_FIELDS):
        raise _missing()
    named = links.named_source(registry, fields)
    attempt.form_source = named[1] if named else None
    link = links.verify(registry, fields, now=now, max_lifetime_seconds=max_link_lifetime_seconds)
    attempt.caller = link.caller
    origin = headers.get("origin")
    if origin is not None and origin not in link.source.origins and origin != own_origin:
        raise forbidden("This page's origin may not post this source's form.", "origin_not_allowed")
    return Admission(link.caller, link.fields, headers.get("idempotency-key"), link)


def _signed_key(header_key: str | None, webhook_id: str) -> str:
    """The signed webhook-id is the key; an unsigned Idempotency-Key may only repeat it."""
    if header_key is not None and header_key != webhook_id:
        raise unprocessable(
            "A signed request's idempotency key is its webhook-id: send no Idempotency-Key, or the same.",
            "idempotency_key_mismatch",
            "Idempotency key mismatch",
        )
    return webhook_id


def identify(
    registry: Registry, headers: Mapping[str, str], *, now: float, request_target: str = ""
) -> Caller:
    """For reads and cancels: a header proof only (a signed link moves one booking; it reads nothing).

    A signature must cover `request_target` (`signatures.request_target`): without one, none is accepted.
    """
    if signatures.carries_signature(headers):
        if not request_target:
            raise unauthenticated("This request cannot be proven by a signature.", "signature_mismatch")
        return signatures.verify(registry, headers, request_target.encode(), now=now).caller
    return authenticate(registry, headers)
