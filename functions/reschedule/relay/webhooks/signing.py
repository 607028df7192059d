"""Standard Webhooks signatures (https://www.standardwebhooks.com), defined once for both ways:
the relay verifies signed requests with it (relay/callers/signatures.py) and signs its outcome
callbacks with it (relay/webhooks/sender.py).

The signed content is `{webhook-id}.{webhook-timestamp}.{body}` over the body's exact bytes; the
signature is its HMAC-SHA256 under the secret's key, sent base64-encoded as `v1,<signature>`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

SIGNATURE_VERSION = "v1"
SIGNATURE_BYTES = hashlib.sha256().digest_size


def content_signature(key: bytes, webhook_id: str, timestamp: int | str, body: bytes) -> bytes:
    """The raw HMAC-SHA256 of `{webhook_id}.{timestamp}.{body}` under `key`."""
    content = f"{webhook_id}.{timestamp}.".encode() + body
    return hmac.new(key, content, hashlib.sha256).digest()


def signature_header(keys: tuple[bytes, ...], webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one `v1,<base64>` per key, space-separated (rotation)."""
    signatures = (content_signature(key, webhook_id, timestamp, body) for key in keys)
    return " ".join(f"{SIGNATURE_VERSION},{base64.b64encode(raw).decode()}" for raw in signatures)
