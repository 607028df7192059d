"""HTTP request -> the API Gateway HTTP API payload 2.0 event the function receives."""

from __future__ import annotations

import base64
import contextlib
import secrets
import string
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from local.lambda_context import ACCOUNT_ID

DEFAULT_ROUTE_KEY = "$default"

# Bodies API Gateway passes through as text; every other body is base64-encoded, including
# application/x-www-form-urlencoded and multipart/form-data (and a body with no content type).
_TEXT_MEDIA_TYPES = frozenset(
    {"application/json", "application/javascript", "application/ecmascript", "application/xml"}
)
# Connection-level headers API Gateway does not forward to the integration.
_HOP_BY_HOP_HEADERS = frozenset(
    {
        "connection",
        "expect",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_REQUEST_ID_ALPHABET = string.ascii_letters + string.digits


# --------------------------------------------------------------------------------------------
# Events


def new_request_id() -> str:
    """An id shaped like API Gateway's (``JKJaXmPLvHcESHA=``), unique per request."""
    return "".join(secrets.choice(_REQUEST_ID_ALPHABET) for _ in range(15)) + "="


def is_text_media_type(content_type: str | None) -> bool:
    """Whether API Gateway passes a request body of this type as text (else base64)."""
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return (
        media_type.startswith("text/")
        or media_type in _TEXT_MEDIA_TYPES
        or media_type.endswith(("+json", "+xml"))
    )


def _apigw_time(epoch_s: float) -> str:
    t = time.gmtime(epoch_s)
    month = _MONTHS[t.tm_mon - 1]
    return f"{t.tm_mday:02d}/{month}/{t.tm_year}:{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"


def _event_headers(
    headers: Iterable[tuple[str, str]], body: bytes, source_ip: str, now: float
) -> tuple[dict[str, str], list[str]]:
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.strip().lower()
        if key == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
        elif key not in _HOP_BY_HOP_HEADERS:
            merged[key] = f"{merged[key]},{value}" if key in merged else value
    if body and "content-length" not in merged:
        merged["content-length"] = str(len(body))
    forwarded_for = merged.get("x-forwarded-for")
    merged["x-forwarded-for"] = f"{forwarded_for}, {source_ip}" if forwarded_for else source_ip
    merged["x-forwarded-proto"] = "http"
    port = _host_port(merged)
    merged["x-forwarded-port"] = str(port) if port else "80"
    merged.setdefault("x-amzn-trace-id", f"Root=1-{int(now):08x}-{secrets.token_hex(12)}")
    return merged, cookies


def _host_port(headers: Mapping[str, str]) -> int | None:
    try:
        return urlsplit(f"//{headers.get('host', '')}").port
    except ValueError:
        return None


def build_event(
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    source_ip: str = "127.0.0.1",
    route_key: str | None = None,
    path_parameters: Mapping[str, str] | None = None,
    request_id: str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The API Gateway HTTP API payload 2.0 event for one request.

    ``raw_path`` is the path as it arrived (percent-encoded); HTTP APIs put it percent-decoded into
    ``rawPath``, while ``rawQueryString`` stays as sent. Header names are lower-cased and repeats
    joined with commas; Cookie headers move to ``cookies``; API Gateway's forwarding headers are
    added. Text bodies are passed as is, any other body base64-encoded.
    """
    now = time.time() if now is None else now
    request_id = request_id or new_request_id()
    event_headers, cookies = _event_headers(headers, body, source_ip, now)
    decoded_path = unquote(raw_path)
    host = event_headers.get("host", "localhost")
    domain_name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    route_key = route_key or DEFAULT_ROUTE_KEY

    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": decoded_path,
        "rawQueryString": raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = event_headers
    query: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    if query:
        event["queryStringParameters"] = query
    event["requestContext"] = {
        "accountId": ACCOUNT_ID,
        "apiId": "local",
        "domainName": domain_name,
        "domainPrefix": domain_name.split(".", 1)[0],
        "http": {
            "method": method.upper(),
            "path": decoded_path,
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": event_headers.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": route_key,
        "stage": "$default",
        "time": _apigw_time(now),
        "timeEpoch": int(now * 1000),
    }
    is_base64 = False
    if body:
        text: str | None = None
        if is_text_media_type(event_headers.get("content-type")):
            with contextlib.suppress(UnicodeDecodeError):
                text = body.decode("utf-8")
        if text is None:
            text, is_base64 = base64.b64encode(body).decode("ascii"), True
        event["body"] = text
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    event["isBase64Encoded"] = is_base64
    return event
