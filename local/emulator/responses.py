"""The function's result -> HTTP, as API Gateway maps payload 2.0 responses, and the gateway's own answers."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class MalformedResponseError(ValueError):
    """The handler's result is not a payload 2.0 response API Gateway can send."""


def gateway_error(status: int, message: str) -> HttpResponse:
    """An answer API Gateway gives on its own, e.g. ``{"message":"Not Found"}``."""
    body = json.dumps({"message": message}, separators=(",", ":")).encode()
    return HttpResponse(status, [("content-type", "application/json")], body)


def _header_text(name: str, value: Any) -> str:
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str) or "\r" in value or "\n" in value or "\r" in name or "\n" in name:
        raise MalformedResponseError(f"header {name!r} has an invalid value {value!r}")
    return value


def to_http_response(result: Any) -> HttpResponse:
    """Map a handler result to HTTP as API Gateway does for payload format 2.0.

    A dict with ``statusCode`` is a response: ``headers``, ``cookies`` (one Set-Cookie each),
    ``body`` (base64-decoded when ``isBase64Encoded``). Anything else is inferred: 200,
    ``application/json``, the result as the body (a string as is, anything else as JSON).
    """
    if not (isinstance(result, dict) and "statusCode" in result):
        text = result if isinstance(result, str) else json.dumps(result)
        return HttpResponse(200, [("content-type", "application/json")], text.encode())

    status = result["statusCode"]
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
        raise MalformedResponseError(f"statusCode {status!r} is not an HTTP status")

    headers: list[tuple[str, str]] = []
    raw_headers = result.get("headers") or {}
    if not isinstance(raw_headers, dict):
        raise MalformedResponseError("headers is not an object")
    for name, value in raw_headers.items():
        if value is not None:
            headers.append((str(name), _header_text(str(name), value)))
    cookies = result.get("cookies") or []
    if not isinstance(cookies, list):
        raise MalformedResponseError("cookies is not a list")
    headers.extend(("set-cookie", _header_text("set-cookie", cookie)) for cookie in cookies)

    raw_body = result.get("body")
    body: bytes
    if raw_body is None:
        body = b""
    elif not isinstance(raw_body, str):
        raise MalformedResponseError(f"body is a {type(raw_body).__name__}, not a string")
    elif result.get("isBase64Encoded"):
        try:
            body = base64.b64decode(raw_body, validate=True)
        except binascii.Error as exc:
            raise MalformedResponseError("body is flagged isBase64Encoded but is not base64") from exc
    else:
        body = raw_body.encode("utf-8")
    return HttpResponse(status, headers, body)
