"""CORS for form sources: the function answers preflight itself, from the registry's origin allowlists.

API Gateway's CorsConfiguration is one static list per API; here each `signed_link` source lists its
own origins in the sources registry (changed without a deploy), so template.yaml has no
CorsConfiguration and routes `OPTIONS /v1/reschedules` to the function. Origins match exactly
(scheme, host and port); `*` is never answered, and no credentials are allowed.

CORS only decides whether a page may send the request and read the answer: it is not
authentication. A post from an allowed origin still needs a valid link token.
"""

from __future__ import annotations

from relay.errors import forbidden

ALLOWED_METHODS = "POST"
ALLOWED_HEADERS = "content-type, idempotency-key"
EXPOSED_HEADERS = "idempotent-replayed, retry-after"
# How long a browser may cache a preflight answer (Chromium caps it at 2 hours).
MAX_AGE_SECONDS = 600


def response_headers(origin: str | None) -> dict[str, str]:
    """For every answer to a browser-reachable route: ACAO only for an allowed origin, and always Vary."""
    headers = {"Vary": "Origin"}
    if origin:
        headers |= {"Access-Control-Allow-Origin": origin, "Access-Control-Expose-Headers": EXPOSED_HEADERS}
    return headers


def preflight_headers(origin: str | None) -> dict[str, str]:
    """The preflight answer for an allowed origin; a disallowed one gets a 403 without any CORS grant."""
    if origin is None:
        raise forbidden("This origin may not call the relay from a browser.", "origin_not_allowed")
    return response_headers(origin) | {
        "Access-Control-Allow-Methods": ALLOWED_METHODS,
        "Access-Control-Allow-Headers": ALLOWED_HEADERS,
        "Access-Control-Max-Age": str(MAX_AGE_SECONDS),
    }
