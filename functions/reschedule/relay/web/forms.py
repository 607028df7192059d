"""Plain HTML form posts: a browser that submitted a form is sent on (303 See Other) to a page.

The pages are the form source's own `success_url` and `error_url` from the registry, never a URL
taken from the request (no open redirect). A short query tells the page what happened:
`?status=ok&start=<new start>&timezone=<its zone>` (so the page can say when), or
`?status=error&code=<reason code>`. Every other caller (JSON, `fetch()`, Zapier, curl) gets JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from relay.web import decoding

_FORM_TYPES = (decoding.URLENCODED, decoding.MULTIPART)


def wants_page(headers: Mapping[str, str]) -> bool:
    """A browser's own form submission: a form body, and HTML accepted in return."""
    kind, _ = decoding.media_type(headers.get("content-type"))
    return kind in _FORM_TYPES and "text/html" in headers.get("accept", "").lower()


def with_query(url: str, params: dict[str, str]) -> str:
    """`url` with `params` added to its query (kept before any fragment)."""
    parts = urlsplit(url)
    query = "&".join(part for part in (parts.query, urlencode(params)) if part)
    return urlunsplit(parts._replace(query=query))


def success_location(success_url: str | None, result: Mapping[str, Any] | None = None) -> str | None:
    """The success page, told the new start and its zone (a time, no personal data)."""
    if success_url is None:
        return None
    params = {"status": "ok"}
    for name in ("start", "timezone"):
        value = (result or {}).get(name)
        if isinstance(value, str):
            params[name] = value
    return with_query(success_url, params)


def queued_location(success_url: str | None) -> str | None:
    """Accepted and queued: the source's success page, told it will be done shortly."""
    return None if success_url is None else with_query(success_url, {"status": "queued"})


def error_location(error_url: str | None, code: str) -> str | None:
    return None if error_url is None else with_query(error_url, {"status": "error", "code": code})
