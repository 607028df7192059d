"""Calls to providers: one keep-alive client per container, explicit timeouts, no redirects.

Every provider answer becomes either a `ProviderReply` (2xx) or a `ProviderError` with the relay's
answer for it, so the mapping is the same for every provider.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from relay.errors import RelayError
from relay.providers.base import OutboundRequest, Provider
from relay.settings import Settings
from relay.times import utc_now

MAX_RESPONSE_BYTES = 1024 * 1024
DEFAULT_RETRY_AFTER_SECONDS = 1
MAX_RETRY_AFTER_SECONDS = 3600
USER_AGENT = "reschedule-relay/0.1"


@dataclass(frozen=True)
class ProviderReply:
    status: int
    body: Any
    latency_ms: int


class ProviderError(RelayError):
    """A provider call that did not succeed; `provider_status` is None when no answer came."""

    provider_status: int | None = None
    latency_ms: int = 0


def _provider_error(
    detail: str, status: int, code: str, provider_status: int | None, latency_ms: int, **kwargs: Any
) -> ProviderError:
    error = ProviderError(detail, status, code, kwargs.pop("title", "Provider error"), **kwargs)
    error.provider_status = provider_status
    error.latency_ms = latency_ms
    return error


class ProviderClient:
    def __init__(self, settings: Settings, transport: httpx.BaseTransport | None = None) -> None:
        self._client = httpx.Client(
            timeout=httpx.Timeout(
                connect=settings.provider_connect_timeout_seconds,
                read=settings.provider_read_timeout_seconds,
                write=settings.provider_connect_timeout_seconds,
                pool=settings.provider_connect_timeout_seconds,
            ),
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            transport=transport,
        )
        self._settings = settings

    def send(self, provider: Provider, request: OutboundRequest, token: str) -> ProviderReply:
        # The base URL is configuration; only the adapter's validated path is appended to it.
        url = provider.base_url(self._settings).rstrip("/") + request.path
        started = time.perf_counter()
        try:
            response = self._client.request(
                request.method, url, json=request.json, headers={"Authorization": f"Bearer {token}"}
            )
        except httpx.TimeoutException:
            latency = _elapsed_ms(started)
            raise _provider_error(
                f"{provider.name} did not answer in time.",
                504,
                "provider_timeout",
                None,
                latency,
                title="Provider timeout",
                retry_after=DEFAULT_RETRY_AFTER_SECONDS,
            ) from None
        except httpx.TransportError:
            latency = _elapsed_ms(started)
            raise _provider_error(
                f"{provider.name} could not be reached.",
                502,
                "provider_unreachable",
                None,
                latency,
                retry_after=DEFAULT_RETRY_AFTER_SECONDS,
            ) from None
        latency = _elapsed_ms(started)
        body = _json_or_none(response)
        if 200 <= response.status_code < 300:
            return ProviderReply(response.status_code, body, latency)
        raise _map_failure(provider, response, body, latency)


def _elapsed_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def _json_or_none(response: httpx.Response) -> Any:
    content = response.content[:MAX_RESPONSE_BYTES]
    try:
        return json.loads(content) if content else None
    except ValueError:
        return None


def retry_after_seconds(response: httpx.Response, body: Any) -> int:
    """Retry-After as seconds (it may be a number or an HTTP date); iClosed also puts it in the body."""
    header = response.headers.get("retry-after", "").strip()
    seconds: float | None = None
    if header.isdigit():
        seconds = int(header)
    elif header:
        try:
            seconds = (parsedate_to_datetime(header) - utc_now()).total_seconds()
        except (TypeError, ValueError):
            seconds = None
    if seconds is None and isinstance(body, dict) and isinstance(body.get("retryAfter"), int):
        seconds = body["retryAfter"]
    if seconds is None:
        return DEFAULT_RETRY_AFTER_SECONDS
    return max(DEFAULT_RETRY_AFTER_SECONDS, min(MAX_RETRY_AFTER_SECONDS, round(seconds)))


def _map_failure(provider: Provider, response: httpx.Response, body: Any, latency: int) -> ProviderError:
    status = response.status_code
    name = provider.name
    if status == 404:
        return _provider_error(
            f"{name} has no booking with this id.",
            404,
            "booking_not_found",
            status,
            latency,
            title="Booking not found",
        )
    if status in (400, 422):
        return _provider_error(
            f"{name} refused the new time or fields.",
            422,
            "provider_rejected",
            status,
            latency,
            title="Provider refused the request",
            errors=provider.field_errors(body),
        )
    if status in (401, 403):
        # The relay's stored token is wrong: a server-side problem, not the caller's.
        return _provider_error(
            f"{name} refused the relay's credentials.", 502, "provider_auth_failed", status, latency
        )
    if status == 429:
        return _provider_error(
            f"{name} is rate limiting; try again later.",
            429,
            "provider_rate_limited",
            status,
            latency,
            title="Rate limited",
            retry_after=retry_after_seconds(response, body),
        )
    return _provider_error(
        f"{name} answered with an error ({status}).", 502, "provider_error", status, latency
    )
