"""Standard Webhooks (https://www.standardwebhooks.com): verify a signed request from its raw bytes.

The sender signs `{webhook-id}.{webhook-timestamp}.{body}` with HMAC-SHA256 (a read or cancel,
which has no body, signs its request target in the body's place: `request_target`) and sends one or more
`v1,<base64 signature>` in `webhook-signature` (several during a secret rotation). The request is
accepted when any signature matches any secret of a `standard_webhooks` source, and its timestamp is
within five minutes of the relay's clock. The body is verified as received, before anything parses it.

Which source? The request does not say, so every secret of every `standard_webhooks` source is
tried, all of them every time (no early exit, constant-time comparisons), and the registry refuses a
secret shared by two sources, so at most one source can match. The cost is one HMAC of the body per
configured secret: bounded by the registry (at most MAX_SECRETS_PER_SOURCE per source) and the 64 KiB
body limit.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass

from relay.callers.registry import Caller, Registry, StandardWebhooksSource
from relay.errors import RelayError, unauthenticated
from relay.webhooks.signing import SIGNATURE_BYTES, SIGNATURE_VERSION, content_signature

WEBHOOK_ID = "webhook-id"
WEBHOOK_TIMESTAMP = "webhook-timestamp"
WEBHOOK_SIGNATURE = "webhook-signature"
WEBHOOK_HEADERS = (WEBHOOK_ID, WEBHOOK_TIMESTAMP, WEBHOOK_SIGNATURE)
# Both ways: a timestamp this far in the past or the future is still accepted, one second more is not.
TOLERANCE_SECONDS = 5 * 60
MAX_SIGNATURES = 10
MAX_SIGNATURE_HEADER_LENGTH = 2048
# The id becomes the idempotency key: visible ASCII, never a '.' (a delimiter in the signed content).
_WEBHOOK_ID = re.compile(r"^[\x21-\x2d\x2f-\x7e]{1,255}$")
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")


@dataclass(frozen=True)
class SignedRequest:
    caller: Caller
    webhook_id: str


def request_target(method: str, path: str, raw_query: str) -> str:
    """What a bodiless request signs in the body's place: `GET /v1/reschedules/<id>` (and `?<query>`
    as sent), so the headers of one signed read are no proof for another path, query or method."""
    return f"{method.upper()} {path}" + (f"?{raw_query}" if raw_query else "")


def carries_signature(headers: Mapping[str, str]) -> bool:
    """Whether the caller chose this proof: any of the three headers selects it."""
    return any(name in headers for name in WEBHOOK_HEADERS)


def _malformed(detail: str) -> RelayError:
    return unauthenticated(detail, "signature_malformed")


def _signatures(header: str) -> list[bytes]:
    """The decoded `v1` signatures; other versions (e.g. `v1a`, asymmetric) are skipped."""
    if len(header) > MAX_SIGNATURE_HEADER_LENGTH:
        raise _malformed("The webhook-signature header is too long.")
    entries = header.split()
    if len(entries) > MAX_SIGNATURES:
        raise _malformed(f"Send at most {MAX_SIGNATURES} signatures in webhook-signature.")
    found = []
    for entry in entries:
        version, comma, encoded = entry.partition(",")
        if not (version and comma and encoded):
            raise _malformed("Each webhook-signature entry is '<version>,<base64 signature>', e.g. 'v1,...'.")
        if version != SIGNATURE_VERSION:
            continue
        try:
            signature = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise _malformed("A v1 signature is not valid base64.") from None
        if len(signature) != SIGNATURE_BYTES:
            raise _malformed(f"A v1 signature is {SIGNATURE_BYTES} bytes (HMAC-SHA256), base64-encoded.")
        found.append(signature)
    if not found:
        raise _malformed("The webhook-signature header has no v1 (HMAC-SHA256) signature.")
    return found


def _check_timestamp(value: str, now: float) -> None:
    if not _TIMESTAMP.match(value):
        raise _malformed("webhook-timestamp is whole seconds since the Unix epoch.")
    age = int(now) - int(value)
    if age > TOLERANCE_SECONDS:
        raise unauthenticated(
            "webhook-timestamp is more than 5 minutes old; sign each delivery when you send it "
            "and check the sender's clock.",
            "signature_timestamp_out_of_range",
        )
    if age < -TOLERANCE_SECONDS:
        raise unauthenticated(
            "webhook-timestamp is more than 5 minutes in the future; check the sender's clock.",
            "signature_timestamp_out_of_range",
        )


def verify(registry: Registry, headers: Mapping[str, str], body: bytes, *, now: float) -> SignedRequest:
    """The source whose secret signed this exact body, or a 401 saying what to fix."""
    values = {name: headers.get(name) for name in WEBHOOK_HEADERS}
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise unauthenticated(
            f"A signed request carries webhook-id, webhook-timestamp and webhook-signature; "
            f"missing: {', '.join(missing)}.",
            "signature_missing",
        )
    webhook_id, timestamp, header = (values[name] or "" for name in WEBHOOK_HEADERS)
    if not _WEBHOOK_ID.match(webhook_id):
        raise _malformed("webhook-id is 1 to 255 visible ASCII characters, without '.'.")
    _check_timestamp(timestamp, now)
    presented = _signatures(header)
    matched: dict[str, StandardWebhooksSource] = {}
    for name, source in registry.of_kind(StandardWebhooksSource):
        for key in source.signing_keys():
            expected = content_signature(key, webhook_id, timestamp, body)
            for signature in presented:
                if hmac.compare_digest(expected, signature):
                    matched[name] = source
    # Signatures of two sources in one request name no single caller: refused like a wrong one.
    if len(matched) != 1:
        raise unauthenticated(
            "No signature matches: sign '{webhook-id}.{webhook-timestamp}.{body}' with your current "
            "secret, over the exact bytes you send.",
            "signature_mismatch",
        )
    ((name, source),) = matched.items()
    return SignedRequest(Caller.of(name, source), webhook_id)
