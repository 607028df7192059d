"""Sending one outcome callback: a Standard Webhooks POST (https://www.standardwebhooks.com).

The signature is `v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">`, one per
secret of the source (the first secret's first), so a receiver that rotates keeps verifying. The
client never follows a redirect (a 3xx is a failed attempt), reads the answer's status and never its
body, and gives up when the timeout setting has passed in total (`WebhookSender`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

import httpx

from relay.tracing import untraced
from relay.webhooks.destinations import destination_refusal
from relay.webhooks.signing import signature_header

if TYPE_CHECKING:
    import asyncio

USER_AGENT = "reschedule-relay-callbacks/1"
# Enough of an answer to tell what it was; the rest is not read.
MAX_LOGGED_REASON = 80


@dataclass(frozen=True)
class CallbackTarget:
    """A source's callback as the sender needs it: the URL and the HMAC keys (never logged)."""

    url: str
    keys: tuple[bytes, ...]
    # Stable for one URL and set of secrets (relay.callers.registry.Callback.target).
    fingerprint: str

    def __repr__(self) -> str:  # the keys never reach a log line or a traceback
        return f"CallbackTarget(url={self.url!r}, fingerprint={self.fingerprint!r})"


class Answer(Enum):
    DELIVERED = "delivered"  # 2xx
    GONE = "gone"  # 410: the receiver asks for no more callbacks
    FAILED = "failed"  # anything else (3xx, 4xx, 5xx, timeout, refused connection): try again later


@dataclass(frozen=True)
class Sent:
    answer: Answer
    # The HTTP status, or 0 when no answer came; `reason` names a transport failure's kind.
    status: int
    reason: str = ""


def url_allowed(url: str, *, allow_http_loopback: bool) -> bool:
    """Checked before each POST: https to public addresses only (relay/webhooks/destinations.py)."""
    return destination_refusal(url, allow_loopback=allow_http_loopback, refuse_unresolved=False) is None


class WebhookSender:
    """POSTs callbacks, each ending within `timeout_seconds` in total whatever the receiver does.

    httpx's timeouts bound each read or write on its own, so a receiver that drips one byte every
    few seconds would hold a blocking client for as long as it likes. The POST runs instead on an
    event loop (httpx's async client) under `asyncio.timeout`: one wall-clock deadline for the
    connection, TLS, request and the answer's status line and headers, cancelled where it waits when
    the deadline passes. The body of the answer is never read: the status alone decides, and the
    connection is closed unread. The loop and client live as long as the container (the first
    callback creates them; a TLS context costs milliseconds).
    """

    def __init__(self, timeout_seconds: float) -> None:
        self._timeout_seconds = timeout_seconds
        self._runner: asyncio.Runner | None = None
        self._client: httpx.AsyncClient | None = None

    def close(self) -> None:
        if self._runner is not None:
            if self._client is not None:
                self._runner.run(self._client.aclose())
            self._runner.close()
        self._runner, self._client = None, None

    def post(self, target: CallbackTarget, *, webhook_id: str, timestamp: int, body: bytes) -> Sent:
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(target.keys, webhook_id, timestamp, body),
        }
        if self._runner is None:
            # Imported here: only the callback function sends, so the HTTP door's cold start skips it.
            import asyncio  # noqa: PLC0415

            self._runner = asyncio.Runner()
        return self._runner.run(self._post(target.url, headers, body))

    def _async_client(self) -> httpx.AsyncClient:
        if self._client is None:  # made inside the loop that uses it
            self._client = untraced(httpx.AsyncClient)(  # X-Ray must not record a callback URL's path
                # Per-operation bounds too, as a backstop; the total deadline is asyncio.timeout.
                timeout=httpx.Timeout(self._timeout_seconds),
                follow_redirects=False,
                trust_env=False,
            )
        return self._client

    async def _post(self, url: str, headers: dict[str, str], body: bytes) -> Sent:
        import asyncio  # noqa: PLC0415 - loaded by post() already

        client = self._async_client()  # the first one's TLS context is not the receiver's time
        try:
            async with asyncio.timeout(self._timeout_seconds):
                request = client.stream("POST", url, content=body, headers=headers)
                async with request as response:  # status line and headers read; the body never is
                    status = response.status_code
        except (TimeoutError, httpx.TimeoutException):
            return Sent(Answer.FAILED, 0, "timeout")
        except httpx.HTTPError as exc:
            return Sent(Answer.FAILED, 0, type(exc).__name__[:MAX_LOGGED_REASON])
        if 200 <= status < 300:
            return Sent(Answer.DELIVERED, status)
        if status == 410:
            return Sent(Answer.GONE, status)
        return Sent(Answer.FAILED, status, f"HTTP {status}")
