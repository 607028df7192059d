"""What a provider sandbox sees of one HTTP request and answers to it, plus the checks both share."""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeGuard


@dataclass(frozen=True)
class ApiRequest:
    method: str
    path: str  # without the query string
    headers: Mapping[str, str]  # lower-cased names
    body: bytes
    query: Mapping[str, list[str]] = field(default_factory=dict)  # parsed query string, blanks kept


@dataclass(frozen=True)
class ApiResponse:
    status: int
    body: Any = None  # JSON-serialisable; None sends no body
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)


class ProviderApi(Protocol):
    """One provider's side of the sandbox: its routes, its error shapes and its bookings."""

    name: str

    def handle(self, request: ApiRequest) -> ApiResponse: ...

    def error(self, status: int, message: str) -> ApiResponse: ...

    def fault(self, status: int, retry_after: int | None) -> ApiResponse:
        """A faulted answer in this provider's shape; carries `Retry-After` whenever retry_after is set."""
        ...

    def rate_limit_key(self, request: ApiRequest) -> str:
        """Which key a per-key rate limit counts this call against (the presented credential)."""
        ...

    def rate_limited(self, per_minute: int, retry_after: int, reset_at: int) -> ApiResponse:
        """This provider's 429 for a key over its per-minute limit (reset_at in Unix seconds)."""
        ...

    def booking_ids(self) -> list[str]: ...

    def bookings_snapshot(self) -> list[dict[str, Any]]: ...

    def state(self) -> dict[str, Any]:
        """The bookings as they stand, JSON-ready (local.sandbox.persistence)."""
        ...

    def restore(self, state: dict[str, Any]) -> None:
        """Put back what `state` returned (at start, over the seeds)."""
        ...


class BodyError(ValueError):
    """The request body is not a JSON document."""


def bearer_matches(headers: Mapping[str, str], token: str) -> bool:
    """True only for `Authorization: Bearer <token>` with exactly this token."""
    presented = headers.get("authorization", "")
    return hmac.compare_digest(presented.encode(), f"Bearer {token}".encode())


def bearer_token(headers: Mapping[str, str]) -> str:
    """The presented bearer token, or the whole Authorization value when it is not a bearer one."""
    presented = headers.get("authorization", "")
    return presented.removeprefix("Bearer ")


def is_json_content_type(headers: Mapping[str, str]) -> bool:
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media_type == "application/json"


def _reject_constant(name: str) -> Any:
    raise BodyError(f"{name} is not valid JSON")


def decode_json(body: bytes) -> Any:
    """Parse a JSON document strictly (UTF-8, no NaN/Infinity)."""
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BodyError(str(exc)) from exc


def is_int(value: object) -> TypeGuard[int]:
    """A JSON integer: bool is an int subclass in Python but not a number in JSON."""
    return isinstance(value, int) and not isinstance(value, bool)
