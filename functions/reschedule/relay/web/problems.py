"""Answers in HTTP terms: RFC 9457 problem documents for every RelayError, and plain JSON."""

from __future__ import annotations

import json
from typing import Any

from relay.errors import DEFAULT_PROBLEM_DOCS_URL, RelayError
from relay.web.http import Response

PROBLEM_JSON = "application/problem+json"
JSON = "application/json"


def json_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=status, content_type=JSON, body=json.dumps(body), headers=headers or {})


def problem_response(
    error: RelayError, instance: str | None, docs_url: str = DEFAULT_PROBLEM_DOCS_URL
) -> Response:
    headers = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    return Response(
        status_code=error.status,
        content_type=PROBLEM_JSON,
        body=json.dumps(error.problem(instance=instance, docs_url=docs_url)),
        headers=headers,
    )
