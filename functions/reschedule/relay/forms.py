"""Plain HTML form posts: a browser that submitted a form is sent on (303 See Other) to a page.

The pages are the form source's own `success_url` and `error_url` from the registry, never a URL
taken from the request (no open redirect). A short query tells the page what happened:
`?status=ok`, or `?status=error&code=<reason code>`. Every other caller (JSON, `fetch()`, Zapier,
curl) gets JSON as usual.
"""

from __future__ import annotations

from collections.abc import Mapping

from relay import intake
from relay.links import with_query
from relay.sources import SignedLinkSource

_FORM_TYPES = (intake.URLENCODED, intake.MULTIPART)


def wants_page(headers: Mapping[str, str]) -> bool:
    """A browser's own form submission: a form body, and HTML accepted in return."""
    kind, _ = intake.media_type(headers.get("content-type"))
    return kind in _FORM_TYPES and "text/html" in headers.get("accept", "").lower()


def success_location(source: SignedLinkSource | None) -> str | None:
    if source is None or source.success_url is None:
        return None
    return with_query(source.success_url, {"status": "ok"})


def error_location(source: SignedLinkSource | None, code: str) -> str | None:
    if source is None or source.error_url is None:
        return None
    return with_query(source.error_url, {"status": "error", "code": code})
