"""Calls to providers: one keep-alive client per container, explicit timeouts, no redirects.

Every provider answer becomes either a `ProviderReply` (2xx) or a `ProviderError` with the relay's
answer for it, so the mapping is the same for every provider.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import httpx

from relay.deadline import Deadline
from relay.errors import RelayError, booking_moved_elsewhere
from relay.providers.base import Credentials, OutboundRequest, Provider, Refusal
from relay.providers.pacing import Bucket, Pacing, paced
from relay.settings import Settings
from relay.times import utc_now

if TYPE_CHECKING:
    from relay.command import RescheduleCommand

MAX_RESPONSE_BYTES = 1024 * 1024
MAX_ATTEMPTS = 3
BACKOFF_BASE_SECONDS = 0.2
BACKOFF_CAP_SECONDS = 2.0
# Not worth starting an attempt with less time than this left.
MIN_ATTEMPT_SECONDS = 0.5
DEFAULT_RETRY_AFTER_SECONDS = 1
MAX_RETRY_AFTER_SECONDS = 3600
USER_AGENT = "reschedule-relay/0.1"


@dataclass(frozen=True)
class ProviderReply:
    status: int
    body: Any
    latency_ms: int


@dataclass(kw_only=True)
class ProviderError(RelayError):
    """A provider call that did not succeed; `provider_status` is None when no answer came."""

    title: str = "Provider error"
    provider_status: int | None = None
    latency_ms: int = 0
    retryable: bool = False
    # The provider's Retry-After in seconds, when it sent one: no retry goes out sooner.
    wait_at_least: int | None = None
    # The provider says the booking was already rescheduled to this id (Cal.com's changing uid).
    moved_to: str | None = None

    def final(self) -> ProviderError:
        """The answer once retries are spent: a provider that keeps failing is unavailable (503)."""
        if self.retryable and self.status == 502:
            return self._unavailable(f"{self.detail} Retries were exhausted.")
        return self

    def out_of_time(self) -> ProviderError:
        """The answer when another attempt would not finish before the deadline."""
        if self.status in (429, 504):
            return self
        return self._unavailable(f"{self.detail} No time was left to retry.")

    def _unavailable(self, detail: str) -> ProviderError:
        return replace(
            self,
            detail=detail,
            status=503,
            code="provider_unavailable",
            title="Provider unavailable",
            retry_after=self.retry_after or DEFAULT_RETRY_AFTER_SECONDS,
            retryable=False,
            wait_at_least=None,
        )


# Retried: no answer at all, or an answer that says "try again" (contracts: 429 carries Retry-After).
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})


class ProviderClient:
    """Sends a reschedule, retrying what is safe to retry, inside the request's deadline.

    A reschedule is a PUT to a target state: sending it again after an unknown outcome (a timeout,
    a dropped connection, a 502/503/504) moves the booking to the same time again, which is safe.
    """

    def __init__(
        self,
        settings: Settings,
        adapters: Mapping[str, Provider],
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[float, float], float] = random.uniform,
        *,
        bucket: Bucket | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._timeout = httpx.Timeout(
            connect=settings.provider_connect_timeout_seconds,
            read=settings.provider_read_timeout_seconds,
            write=settings.provider_connect_timeout_seconds,
            pool=settings.provider_connect_timeout_seconds,
        )
        self._client = httpx.Client(
            timeout=self._timeout,
            follow_redirects=False,
            # TLS set-up costs cold start; skip it only when no provider is reached over HTTPS at all.
            verify=any(p.base_url.startswith("https:") for p in adapters.values()),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            transport=transport,
        )
        self._settings = settings
        self._sleep = sleep
        self._jitter = jitter
        self._bucket = bucket
        self._clock = clock

    def move(
        self,
        provider: Provider,
        command: RescheduleCommand,
        credentials: Credentials,
        deadline: Deadline | None = None,
        pacing: Pacing | None = None,
    ) -> ProviderReply:
        """Move the booking: refuse what the provider's booking says cannot move, then send the move.

        When the provider answers that the booking was already rescheduled to X (a retry after an
        unknown outcome, at Cal.com), X is read: at the requested start it is this move's success
        (nothing is sent twice); anywhere else it is a 409 `booking_moved_elsewhere`.
        """
        read = provider.read_booking(command.booking_id) if provider.reads_before_move else None
        if read is not None:
            refusal = provider.movable(self.send(provider, read, credentials, deadline, pacing).body)
            if refusal is not None and refusal.moved_to is None:
                raise _refused(refusal, None, 0)
            if refusal is not None and refusal.moved_to is not None:
                return self._settle(provider, command, refusal.moved_to, credentials, deadline, pacing=pacing)
        try:
            return self.send(provider, provider.build_request(command), credentials, deadline, pacing=pacing)
        except ProviderError as error:
            if error.moved_to is None:
                raise
            return self._settle(provider, command, error.moved_to, credentials, deadline, pacing=pacing)

    def _settle(
        self,
        provider: Provider,
        command: RescheduleCommand,
        moved_to: str,
        credentials: Credentials,
        deadline: Deadline | None,
        *,
        pacing: Pacing | None,
    ) -> ProviderReply:
        read = provider.read_booking(moved_to)
        if read is None:  # pragma: no cover - only providers that read bookings name a new id
            raise booking_moved_elsewhere(provider.name, moved_to)
        reply = self.send(provider, read, credentials, deadline, pacing=pacing)
        if not provider.starts_at(reply.body, command.start):
            raise booking_moved_elsewhere(provider.name, moved_to)
        return reply

    def send(
        self,
        provider: Provider,
        request: OutboundRequest,
        credentials: Credentials,
        deadline: Deadline | None = None,
        pacing: Pacing | None = None,
    ) -> ProviderReply:
        deadline = deadline or Deadline.within(self._settings.provider_read_timeout_seconds * MAX_ATTEMPTS)
        attempt = 0
        while True:
            attempt += 1
            self._pace(provider, pacing, deadline)
            try:
                return self._send_once(provider, request, credentials, deadline)
            except ProviderError as error:
                if not error.retryable or attempt >= MAX_ATTEMPTS:
                    raise error.final() from None
                wait = self._backoff(attempt, error.wait_at_least)
                if wait + MIN_ATTEMPT_SECONDS > deadline.remaining():
                    raise error.out_of_time() from None
                self._sleep(wait)

    def _pace(self, provider: Provider, pacing: Pacing | None, deadline: Deadline) -> None:
        """Take the account's token for one call: now, after a short reserved wait, or refused (429)."""
        if pacing is None or self._bucket is None or pacing.rate_per_minute <= 0:
            return
        now = self._clock()
        # A wait is only worth it if a whole call still fits in the deadline afterwards.
        room = deadline.remaining() - self._settings.provider_read_timeout_seconds - MIN_ATTEMPT_SECONDS
        wait_allowed = max(0.0, min(pacing.max_wait_seconds, room))
        now_ms = int(now * 1000)
        take = self._bucket.take(
            pacing.key,
            interval_ms=pacing.interval_ms,
            now_ms=now_ms,
            horizon_ms=now_ms + int(wait_allowed * 1000),
        )
        if take.slot_ms is None:
            raise paced(provider.name, (take.next_free_ms - now_ms) / 1000)
        wait = take.slot_ms / 1000 - self._clock()
        if wait > 0:
            self._sleep(wait)

    def _backoff(self, attempt: int, retry_after: int | None) -> float:
        """Exponential backoff with full jitter; never sooner than the provider's Retry-After."""
        ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
        wait = self._jitter(0, ceiling)
        return max(wait, float(retry_after)) if retry_after is not None else wait

    def _send_once(
        self, provider: Provider, request: OutboundRequest, credentials: Credentials, deadline: Deadline
    ) -> ProviderReply:
        # The base URL is configuration; only the adapter's validated path is appended to it.
        url = provider.base_url + request.path
        remaining = deadline.remaining()
        timeout = httpx.Timeout(
            connect=min(self._timeout.connect or remaining, remaining),
            read=min(self._timeout.read or remaining, remaining),
            write=min(self._timeout.write or remaining, remaining),
            pool=min(self._timeout.pool or remaining, remaining),
        )
        started = time.perf_counter()
        try:
            response = self._client.request(
                request.method,
                url,
                json=request.json,
                params={**request.params, **credentials.params()},
                headers={**request.headers, **credentials.headers()},
                timeout=timeout,
            )
        except httpx.TimeoutException:
            latency = _elapsed_ms(started)
            raise ProviderError(
                detail=f"{provider.name} did not answer in time.",
                status=504,
                code="provider_timeout",
                provider_status=None,
                latency_ms=latency,
                title="Provider timeout",
                retry_after=DEFAULT_RETRY_AFTER_SECONDS,
                retryable=True,
            ) from None
        except httpx.TransportError:
            latency = _elapsed_ms(started)
            raise ProviderError(
                detail=f"{provider.name} could not be reached.",
                status=502,
                code="provider_unreachable",
                provider_status=None,
                latency_ms=latency,
                retry_after=DEFAULT_RETRY_AFTER_SECONDS,
                retryable=True,
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


def retry_after_seconds(response: httpx.Response, body: Any) -> int | None:
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
        return None
    return max(0, min(MAX_RETRY_AFTER_SECONDS, round(seconds)))


def _map_failure(provider: Provider, response: httpx.Response, body: Any, latency: int) -> ProviderError:
    status = response.status_code
    name = provider.name
    if status == 404:
        return ProviderError(
            detail=f"{name} has no booking with this id.",
            status=404,
            code="booking_not_found",
            provider_status=status,
            latency_ms=latency,
            title="Booking not found",
        )
    refusal = provider.refusal(status, body) if status in (400, 409, 422) else None
    if refusal is not None:
        return _refused(refusal, status, latency)
    if status in (400, 422):
        return ProviderError(
            detail=f"{name} refused the new time or fields.",
            status=422,
            code="provider_rejected",
            provider_status=status,
            latency_ms=latency,
            title="Provider refused the request",
            errors=provider.field_errors(body),
        )
    if status in (401, 403):
        # The relay's stored token is wrong: a server-side problem, not the caller's.
        return ProviderError(
            detail=f"{name} refused the relay's credentials.",
            status=502,
            code="provider_auth_failed",
            provider_status=status,
            latency_ms=latency,
        )
    retry_after = retry_after_seconds(response, body) if status in RETRYABLE_STATUSES else None
    if status == 429:
        return ProviderError(
            detail=f"{name} is rate limiting; try again later.",
            status=429,
            code="provider_rate_limited",
            provider_status=status,
            latency_ms=latency,
            title="Rate limited",
            retryable=True,
            retry_after=max(DEFAULT_RETRY_AFTER_SECONDS, retry_after or 0),
            wait_at_least=retry_after,
        )
    return ProviderError(
        detail=f"{name} answered with an error ({status}).",
        status=502,
        code="provider_error",
        provider_status=status,
        latency_ms=latency,
        retryable=status in RETRYABLE_STATUSES,
        retry_after=retry_after,
        wait_at_least=retry_after,
    )


def _refused(refusal: Refusal, status: int | None, latency: int) -> ProviderError:
    return ProviderError(
        detail=refusal.detail,
        status=422,
        code=refusal.code,
        provider_status=status,
        latency_ms=latency,
        title="Provider refused the request",
        errors=refusal.errors,
        moved_to=refusal.moved_to,
    )
