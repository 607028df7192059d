"""Calls to providers: one keep-alive client per container, explicit timeouts, no redirects.

Every provider answer becomes either a `ProviderReply` (2xx) or a `ProviderError` with the relay's
answer for it, so the mapping is the same for every provider. A `ProviderError` says whether the
move's outcome is unknown (`outcome_unknown`): then only a read of the booking can tell whether it
moved (`read_booking`, `settle_by_reading`, relay.providers.settle), and a move that is not safe to
repeat (`Provider.repeat_is_harmless`) is never sent again before that read.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import httpx

from relay.deadline import Deadline
from relay.errors import RelayError, booking_moved_elsewhere
from relay.providers.base import (
    BookingState,
    Credentials,
    OutboundRequest,
    Provider,
    Refusal,
    Settled,
    Settlement,
)
from relay.providers.pacing import Bucket, Pacing, paced
from relay.providers.settle import settle
from relay.settings import Settings
from relay.times import utc_now

if TYPE_CHECKING:
    from relay.command import RescheduleCommand

# What is read of a provider's answer; the rest is not downloaded (the answer is then unreadable).
MAX_RESPONSE_BYTES = 1024 * 1024
# Deepest JSON nesting parsed; a deeper answer is treated as no JSON (the parser would recurse).
MAX_JSON_DEPTH = 64
# Longest Retry-After header read (an HTTP-date is 29 characters).
MAX_RETRY_AFTER_CHARS = 64
MAX_ATTEMPTS = 3
BACKOFF_BASE_SECONDS = 0.2
BACKOFF_CAP_SECONDS = 2.0
# Not worth starting an attempt with less time than this left.
MIN_ATTEMPT_SECONDS = 0.5
DEFAULT_RETRY_AFTER_SECONDS = 1
MAX_RETRY_AFTER_SECONDS = 3600
USER_AGENT = "reschedule-relay/0.1"


@dataclass(frozen=True)
class SendPolicy:
    """How one attempt may call: a guard run right before each call starts (it raises to stop the
    attempt: a cancelled queued request), and how many tries it may make (a circuit's probe: one)."""

    before_each: Callable[[], None] | None = None
    max_tries: int = MAX_ATTEMPTS


DEFAULT_POLICY = SendPolicy()


@dataclass(frozen=True)
class ProviderReply:
    status: int
    body: Any
    latency_ms: int


@dataclass(frozen=True)
class BookingRead:
    """One booking read: its state, and the answer it came in (None when the provider has no such booking)."""

    state: BookingState
    reply: ProviderReply | None


@dataclass(frozen=True)
class SettledRead:
    """What reading after an unknown outcome showed; `reply`: the read of the moved booking (MOVED only)."""

    settlement: Settlement
    reply: ProviderReply | None


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
    # Whether the move may have happened although this answer says otherwise: the request went out
    # and no definite answer came back (a timeout or a connection closed after sending, a 5xx), or
    # the provider's answer is itself a reason to read (Cal.com's 409 conflict and "already
    # rescheduled" 400). Only a read of the booking settles it; never set for a read.
    outcome_unknown: bool = False

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


# Retried: no answer at all, or an answer that says "try again".
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
# Answers an adapter may read as a refusal of this booking, before the generic mapping.
REFUSAL_STATUSES = frozenset({400, 403, 404, 409, 422})
# A move colliding with one still in flight (Cal.com's 409 `booking_conflict_error`).
CONFLICT_STATUS = 409
# How a 409 names a successor the provider could not name (Cal.com's "uid=undefined").
UNNAMED_SUCCESSOR = "unknown"
# The code the use case answers by reading the provider's secret again, once (401, Cal.com's 498).
AUTH_FAILED_CODE = "provider_auth_failed"


class ProviderClient:
    """Sends a reschedule, retrying what is safe to retry, inside the request's deadline.

    Where a move is a PUT to a target state (iClosed, NovaCal), sending it again after an unknown
    outcome moves the booking to the same time again, which is safe. Where it is not (Cal.com's POST
    creates a booking; Acuity), an unknown outcome is settled by reading the booking first.
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
        # Accounts a provider's 429 blocked, until when (epoch seconds): nothing is sent before it.
        self._held: dict[str, float] = {}

    def move(
        self,
        provider: Provider,
        command: RescheduleCommand,
        credentials: Credentials,
        deadline: Deadline | None = None,
        pacing: Pacing | None = None,
        *,
        settle_first: bool = False,
        policy: SendPolicy | None = None,
    ) -> ProviderReply:
        """Move the booking: refuse what the provider's booking says cannot move, then send the move.

        `settle_first`: an earlier attempt's outcome is unknown (its answer was lost and no read
        settled it): a provider whose move is not safe to repeat has the booking read before anything
        is sent, and a read showing the move is this move's success.

        After an answer whose outcome is unknown, a provider whose move is not safe to repeat has the
        booking read (`settle_by_reading`) before anything is sent again: a read showing the move is
        this move's success (its reply is the read), "not moved" sends the move again while the
        retry budget lasts, anything else answers the error. The happy path costs no extra call.
        """
        deadline = deadline or self._default_deadline()
        policy = policy or DEFAULT_POLICY
        if settle_first and provider.has_read and not provider.repeat_is_harmless:
            settled = self._settle_before_sending(
                provider, command, credentials, deadline, pacing, policy=policy
            )
            if settled is not None:
                return settled
        if provider.reads_before_move:
            read = self.read_booking(
                provider, command.booking_id, credentials, deadline, pacing, policy=policy
            )
            if not read.state.found:
                raise _not_found(provider.name, 404, 0)
            refusal = provider.movable(read.state)
            if refusal is not None and refusal.moved_to is None:
                raise _refused(refusal, None, 0, provider.name)
            if refusal is not None and refusal.moved_to is not None:
                return self._moved_already(provider, command, credentials, deadline, pacing, policy=policy)
        request = provider.build_request(command)
        attempt = 0
        while True:
            attempt += 1
            try:
                return self.send(provider, request, credentials, deadline, pacing=pacing, policy=policy)
            except ProviderError as error:
                if not error.outcome_unknown or provider.repeat_is_harmless or not provider.has_read:
                    raise
                reply = self._settle_or_raise(
                    provider, command, credentials, deadline, pacing, error=error, policy=policy
                )
                if reply is not None:
                    return reply
                if attempt >= policy.max_tries:
                    raise error.final() from None
                self._back_off(attempt, error.wait_at_least, deadline, error)

    def _settle_or_raise(
        self,
        provider: Provider,
        command: RescheduleCommand,
        credentials: Credentials,
        deadline: Deadline,
        pacing: Pacing | None,
        *,
        error: ProviderError,
        policy: SendPolicy,
    ) -> ProviderReply | None:
        """Read until the unknown outcome is settled: the success reply, None (not moved: send again),
        or raise. After a conflict (a move still in flight) "not moved" is read again, never resent,
        until the move lands or the deadline is near."""
        reads = 0
        while True:
            reads += 1
            try:
                settled = self.settle_by_reading(
                    provider, command, credentials, deadline, pacing, policy=policy
                )
            except ProviderError as unread:
                # The read failed too: the move's outcome is still unknown, whatever the read said.
                raise replace(unread, outcome_unknown=True) from None
            outcome = settled.settlement.outcome
            if outcome is Settled.MOVED and settled.reply is not None:
                return settled.reply
            if outcome is Settled.MOVED_ELSEWHERE and settled.settlement.booking_id:
                raise booking_moved_elsewhere(provider.name, settled.settlement.booking_id) from None
            if outcome is not Settled.NOT_MOVED:
                raise error.final()
            if error.provider_status != CONFLICT_STATUS:
                return None
            self._back_off(reads, None, deadline, error)

    def _settle_before_sending(
        self,
        provider: Provider,
        command: RescheduleCommand,
        credentials: Credentials,
        deadline: Deadline,
        pacing: Pacing | None,
        *,
        policy: SendPolicy,
    ) -> ProviderReply | None:
        """The read an earlier unknown outcome calls for: the move's success, None (not moved: send
        it), or raise when the read cannot tell (nothing is sent blind)."""
        earlier = ProviderError(
            detail=f"{provider.name}'s booking could not be read to a clear state after an earlier "
            "attempt's answer was lost; nothing was sent.",
            status=503,
            code="provider_unavailable",
            title="Provider unavailable",
            retry_after=DEFAULT_RETRY_AFTER_SECONDS,
            outcome_unknown=True,
        )
        return self._settle_or_raise(
            provider, command, credentials, deadline, pacing, error=earlier, policy=policy
        )

    def _moved_already(
        self,
        provider: Provider,
        command: RescheduleCommand,
        credentials: Credentials,
        deadline: Deadline,
        pacing: Pacing | None,
        *,
        policy: SendPolicy,
    ) -> ProviderReply:
        """The booking was moved already (Cal.com's spent uid): this move's success only at its start."""
        settled = self.settle_by_reading(provider, command, credentials, deadline, pacing, policy=policy)
        if settled.settlement.outcome is Settled.MOVED and settled.reply is not None:
            return settled.reply
        raise booking_moved_elsewhere(provider.name, settled.settlement.booking_id or "unknown")

    def read_booking(
        self,
        provider: Provider,
        booking_id: str,
        credentials: Credentials,
        deadline: Deadline | None = None,
        pacing: Pacing | None = None,
        *,
        policy: SendPolicy | None = None,
    ) -> BookingRead:
        """Read one booking (same client, timeouts, pacing and retries as a move: a read is safe to
        repeat). A 404 is `found=False`; other failures raise ProviderError as a move's would."""
        request = provider.read_request(booking_id)
        if request is None:
            raise ValueError(f"{provider.name} has no booking read")
        try:
            reply = self.send(provider, request, credentials, deadline, pacing=pacing, policy=policy)
        except ProviderError as error:
            if error.provider_status == 404 and error.code == "booking_not_found":
                return BookingRead(BookingState(booking_id, found=False), None)
            raise
        return BookingRead(provider.booking_state(booking_id, reply.body), reply)

    def settle_by_reading(
        self,
        provider: Provider,
        command: RescheduleCommand,
        credentials: Credentials,
        deadline: Deadline | None = None,
        pacing: Pacing | None = None,
        *,
        policy: SendPolicy | None = None,
    ) -> SettledRead:
        """Read what an unknown outcome left (`command.booking_id`, then its successor when the
        provider gives a moved booking a new id) and settle it. `reply` is the read of the booking
        as it now stands at the requested start (MOVED), usable as the move's success reply."""
        first = self.read_booking(provider, command.booking_id, credentials, deadline, pacing, policy=policy)
        settlement = settle(provider, command, first.state)
        if settlement.outcome is not Settled.READ_NEXT or settlement.booking_id is None:
            return SettledRead(settlement, first.reply if settlement.outcome is Settled.MOVED else None)
        second = self.read_booking(
            provider, settlement.booking_id, credentials, deadline, pacing, policy=policy
        )
        settlement = settle(provider, command, first.state, second.state)
        return SettledRead(settlement, second.reply if settlement.outcome is Settled.MOVED else None)

    def send(
        self,
        provider: Provider,
        request: OutboundRequest,
        credentials: Credentials,
        deadline: Deadline | None = None,
        pacing: Pacing | None = None,
        *,
        policy: SendPolicy | None = None,
    ) -> ProviderReply:
        """Send one request, retrying what is safe to retry inside the deadline (at most the policy's
        tries, each guarded by it).

        A move whose outcome is unknown is sent again only when the provider says a repeat is
        harmless (a PUT to a target state); otherwise the error goes up, to be settled by a read.
        """
        deadline = deadline or self._default_deadline()
        policy = policy or DEFAULT_POLICY
        repeatable = request.method == "GET" or provider.repeat_is_harmless
        attempt = 0
        while True:
            attempt += 1
            try:
                return self.send_once(provider, request, credentials, deadline, pacing, policy=policy)
            except ProviderError as error:
                if error.outcome_unknown and not repeatable:
                    raise  # only a read may tell whether to send it again
                if not error.retryable or attempt >= policy.max_tries:
                    raise error.final() from None
                self._back_off(attempt, error.wait_at_least, deadline, error)

    def send_once(
        self,
        provider: Provider,
        request: OutboundRequest,
        credentials: Credentials,
        deadline: Deadline | None = None,
        pacing: Pacing | None = None,
        *,
        policy: SendPolicy | None = None,
    ) -> ProviderReply:
        """Exactly one call (after taking the account's pacing token): no retry of any kind.

        A 429 from a provider that blocks the account (`holds_after_429`: Cal.com blocks a key for
        60 s and counts refused calls too) holds the account until the wait it asked for, so no door
        calls inside the block.
        """
        deadline = deadline or self._default_deadline()
        held_until = self._held.get(pacing.key, 0.0) if pacing is not None else 0.0
        if held_until > self._clock():
            raise paced(provider.name, held_until - self._clock())
        self._pace(provider, pacing, deadline)
        if policy is not None and policy.before_each is not None:
            policy.before_each()  # after the pacing wait: nothing stands between it and the call
        try:
            return self._send_once(provider, request, credentials, deadline)
        except ProviderError as error:
            if (
                error.status == 429
                and error.wait_at_least
                and pacing is not None
                and provider.holds_after_429
            ):
                self._hold(pacing, self._clock() + error.wait_at_least)
            raise

    def _hold(self, pacing: Pacing, until: float) -> None:
        """Send nothing for this account before `until`: in this container at once, and in every
        container through the shared bucket when the account is paced."""
        self._held[pacing.key] = max(until, self._held.get(pacing.key, 0.0))
        if self._bucket is not None and pacing.rate_per_minute > 0:
            with contextlib.suppress(RelayError):  # the provider's 429 is the answer that matters
                self._bucket.hold(pacing.key, until_ms=int(until * 1000))

    def _default_deadline(self) -> Deadline:
        return Deadline.within(self._settings.provider_read_timeout_seconds * MAX_ATTEMPTS)

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

    def _back_off(
        self, attempt: int, retry_after: int | None, deadline: Deadline, error: ProviderError
    ) -> None:
        """Wait before the next try, or raise `error` as out of time when no try would fit after it."""
        wait = self._backoff(attempt, retry_after)
        if wait + MIN_ATTEMPT_SECONDS > deadline.remaining():
            raise error.out_of_time() from None
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
        # Whether a lost answer leaves the provider's state unknown: only a request that changes it.
        changes = request.method != "GET"
        started = time.perf_counter()
        outgoing = self._client.build_request(
            request.method,
            url,
            json=request.json,
            params={**request.params, **credentials.params()},
            headers={**request.headers, **credentials.headers()},
            timeout=timeout,
        )
        try:
            response = self._client.send(outgoing, stream=True)
            try:
                content = _read_bounded(response)
            finally:
                response.close()
        except httpx.TimeoutException as exc:
            raise ProviderError(
                detail=f"{provider.name} did not answer in time.",
                status=504,
                code="provider_timeout",
                provider_status=None,
                latency_ms=_elapsed_ms(started),
                title="Provider timeout",
                retry_after=DEFAULT_RETRY_AFTER_SECONDS,
                retryable=True,
                outcome_unknown=changes and not isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout),
            ) from None
        except httpx.TransportError as exc:
            raise ProviderError(
                detail=f"{provider.name} could not be reached.",
                status=502,
                code="provider_unreachable",
                provider_status=None,
                latency_ms=_elapsed_ms(started),
                retry_after=DEFAULT_RETRY_AFTER_SECONDS,
                retryable=True,
                # Refused before connecting: nothing went out. Closed later: it may have been applied.
                outcome_unknown=changes and not isinstance(exc, httpx.ConnectError),
            ) from None
        latency = _elapsed_ms(started)
        body = parse_json(content)
        if 200 <= response.status_code < 300:
            return ProviderReply(response.status_code, body, latency)
        error = _map_failure(provider, response, body, latency)
        if changes and provider.outcome_unknown(response.status_code, body):
            # Cal.com's 409 (a move colliding with one in flight) is worth another attempt once read.
            error = replace(
                error, outcome_unknown=True, retryable=error.retryable or response.status_code == 409
            )
        raise error


def _read_bounded(response: httpx.Response) -> bytes:
    """The answer's first MAX_RESPONSE_BYTES (an answer cut there does not parse, on purpose)."""
    content = bytearray()
    for chunk in response.iter_bytes():
        content += chunk
        if len(content) > MAX_RESPONSE_BYTES:
            break
    return bytes(content)


def _elapsed_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def _too_deep(content: bytes) -> bool:
    """Whether the JSON nests deeper than MAX_JSON_DEPTH (brackets inside strings not counted)."""
    if content.count(b"[") + content.count(b"{") <= MAX_JSON_DEPTH:
        return False  # cheap: most answers have fewer brackets than the bound in all
    depth = 0
    in_string = escaped = False
    for byte in content:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return True
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return False


def parse_json(content: bytes) -> Any:
    """A provider's answer as JSON, or None when it is empty, not JSON, cut short or nested too deep."""
    if not content or len(content) > MAX_RESPONSE_BYTES or _too_deep(content):
        return None
    try:
        return json.loads(content)
    except (ValueError, RecursionError):
        return None


_ASCII_SECONDS = re.compile(r"[0-9]{1,10}")


def retry_after_seconds(headers: Mapping[str, str], body: Any) -> int | None:
    """Retry-After as whole seconds in [0, MAX_RETRY_AFTER_SECONDS], or None when absent or unreadable.

    It may be ASCII digits or an HTTP date (RFC 9110); iClosed also puts it in the body. Anything
    else (negative, other digits, garbage) is ignored rather than trusted.
    """
    header = headers.get("retry-after", "").strip()[: MAX_RETRY_AFTER_CHARS + 1]
    seconds: float | None = None
    if _ASCII_SECONDS.fullmatch(header):
        seconds = int(header)
    elif header and len(header) <= MAX_RETRY_AFTER_CHARS:
        try:
            moment = parsedate_to_datetime(header)
            seconds = (moment - utc_now()).total_seconds() if moment.tzinfo is not None else None
        except (TypeError, ValueError, IndexError, OverflowError):
            seconds = None
    if seconds is None and isinstance(body, dict):
        value = body.get("retryAfter")
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            seconds = value
    if seconds is None:
        return None
    return max(0, min(MAX_RETRY_AFTER_SECONDS, round(seconds)))


def _map_failure(provider: Provider, response: httpx.Response, body: Any, latency: int) -> ProviderError:
    status = response.status_code
    name = provider.name
    # The adapter first: a 403 or 404 may be a refusal of this booking (Cal.com), not a generic one.
    refusal = provider.refusal(status, body) if status in REFUSAL_STATUSES else None
    if refusal is not None:
        return _refused(refusal, status, latency, name)
    if status == 404:
        return _not_found(name, status, latency)
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
    if status in provider.auth_statuses:
        # The relay's stored token is wrong or expired: a server-side problem, not the caller's.
        # The use case reads the secret again once on this code (a rotated or refreshed token).
        return ProviderError(
            detail=f"{name} refused the relay's credentials.",
            status=502,
            code=AUTH_FAILED_CODE,
            provider_status=status,
            latency_ms=latency,
        )
    if status == 429:
        return _rate_limited(provider, response, body, latency)
    retry_after = retry_after_seconds(response.headers, body) if status in RETRYABLE_STATUSES else None
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


def _rate_limited(provider: Provider, response: httpx.Response, body: Any, latency: int) -> ProviderError:
    """429: wait what the provider says (Retry-After, else its own reset header), never under a second."""
    said = retry_after_seconds(response.headers, body)
    if said is None:
        said = provider.rate_limit_reset(response.headers)
    wait = max(DEFAULT_RETRY_AFTER_SECONDS, said or 0)
    return ProviderError(
        detail=f"{provider.name} is rate limiting; try again in {wait} s.",
        status=429,
        code="provider_rate_limited",
        provider_status=429,
        latency_ms=latency,
        title="Rate limited",
        retryable=True,
        retry_after=wait,
        wait_at_least=wait,
    )


def _not_found(name: str, status: int, latency: int) -> ProviderError:
    return ProviderError(
        detail=f"{name} has no booking with this id.",
        status=404,
        code="booking_not_found",
        provider_status=status,
        latency_ms=latency,
        title="Booking not found",
    )


def _refused(refusal: Refusal, status: int | None, latency: int, name: str) -> ProviderError:
    if refusal.code == "booking_moved_elsewhere":
        # Already rescheduled (Cal.com): 409 naming the successor, unless a read shows it is this move.
        moved = booking_moved_elsewhere(name, refusal.moved_to or UNNAMED_SUCCESSOR)
        return ProviderError(
            detail=moved.detail,
            status=moved.status,
            code=moved.code,
            title=moved.title,
            extra=dict(moved.extra),
            provider_status=status,
            latency_ms=latency,
            moved_to=refusal.moved_to,
        )
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
