"""Sending one outcome callback: a Standard Webhooks POST (https://www.standardwebhooks.com).

The signature is `v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">`, one per
secret of the source (the first secret's first), so a receiver that rotates keeps verifying. The
client never follows a redirect (a 3xx is a failed attempt) and gives up after the timeout setting.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from enum import Enum

import httpx

from relay.tracing import untraced_client
from relay.webhooks.destinations import destination_refusal

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


def signature(keys: tuple[bytes, ...], webhook_id: str, timestamp: int, body: bytes) -> str:
    content = f"{webhook_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode() for key in keys
    )


def url_allowed(url: str, *, allow_http_loopback: bool) -> bool:
    """Checked before each POST: https to public addresses only (relay/webhooks/destinations.py)."""
    return destination_refusal(url, allow_loopback=allow_http_loopback, refuse_unresolved=False) is None


class WebhookSender:
    """One httpx client per container for callbacks (separate from the providers' pool)."""

    def __init__(self, timeout_seconds: float, client: httpx.Client | None = None) -> None:
        self._timeout_seconds = timeout_seconds
        # Made at the first callback, not at cold start (a TLS context costs milliseconds): only the
        # worker sends callbacks, and only for sources that have one.
        self._client = client

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = untraced_client(  # X-Ray must not record a callback URL's path
                timeout=httpx.Timeout(self._timeout_seconds), follow_redirects=False, trust_env=False
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def post(self, target: CallbackTarget, *, webhook_id: str, timestamp: int, body: bytes) -> Sent:
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(target.keys, webhook_id, timestamp, body),
        }
        try:
            response = self.client.post(target.url, content=body, headers=headers)
        except httpx.TimeoutException:
            return Sent(Answer.FAILED, 0, "timeout")
        except httpx.HTTPError as exc:
            return Sent(Answer.FAILED, 0, type(exc).__name__[:MAX_LOGGED_REASON])
        if 200 <= response.status_code < 300:
            return Sent(Answer.DELIVERED, response.status_code)
        if response.status_code == 410:
            return Sent(Answer.GONE, response.status_code)
        return Sent(Answer.FAILED, response.status_code, f"HTTP {response.status_code}")
