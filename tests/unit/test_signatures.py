"""Standard Webhooks verification, against requests signed by the reference implementation (PyPI
`standardwebhooks`), with an injected clock: no I/O."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from relay.callers.registry import parse_registry
from relay.callers.signatures import TOLERANCE_SECONDS, verify
from relay.errors import RelayError

OLD = "whsec_" + base64.b64encode(b"sandbox-signing-secret-0001").decode()
NEW = "whsec_" + base64.b64encode(b"sandbox-signing-secret-0002").decode()
OTHER = "whsec_" + base64.b64encode(b"sandbox-signing-secret-other").decode()
NOW = 1_900_000_000
BODY = json.dumps({"provider": "iclosed", "booking_id": 1001, "start": "2030-01-01T10:00:00Z"})

REGISTRY = parse_registry(
    {
        "sources": {
            "hook": {
                "kind": "standard_webhooks",
                "secrets": [OLD, NEW],
                "providers": {"iclosed": ["default"]},
            },
            "other": {"kind": "standard_webhooks", "secrets": [OTHER], "providers": {}},
        }
    }
)


def signature(secret: str, msg_id: str = "msg_1", timestamp: int = NOW, body: str = BODY) -> str:
    """`v1,<base64>` as the reference implementation signs it."""
    return Webhook(secret).sign(msg_id, datetime.fromtimestamp(timestamp, tz=UTC), body)


def headers(sig: str, msg_id: str = "msg_1", timestamp: int = NOW) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": sig}


def refused(head: dict[str, str], body: str = BODY, now: float = NOW) -> RelayError:
    with pytest.raises(RelayError) as caught:
        verify(REGISTRY, head, body.encode(), now=now)
    assert caught.value.status == 401
    return caught.value


@pytest.mark.parametrize(
    "sig",
    [
        signature(OLD),  # the old secret, still listed during the rotation
        signature(NEW),  # the new one
        f"{signature(OLD)} {signature(NEW)}",  # a sender signing with both
        f"{signature(NEW)} {signature(OLD)}",
        f"v1a,{base64.b64encode(b'x' * 64).decode()} {signature(NEW)}",  # asymmetric entries are skipped
        # one stale signature does not spoil a good one
        f"{signature(NEW, body='tampered')} {signature(OLD)}",
    ],
)
def test_any_listed_secret_and_any_signature_in_the_header_verifies(sig: str) -> None:
    signed = verify(REGISTRY, headers(sig), BODY.encode(), now=NOW)
    assert (signed.caller.name, signed.caller.kind, signed.webhook_id) == (
        "hook",
        "standard_webhooks",
        "msg_1",
    )
    assert signed.caller.providers == {"iclosed": ["default"]}


def test_the_reference_implementation_accepts_what_we_accept() -> None:
    # Cross-check at the current time: the same headers verify with the reference's own verify().
    now = int(datetime.now(tz=UTC).timestamp())
    head = headers(signature(NEW, timestamp=now), timestamp=now)
    assert Webhook(NEW).verify(BODY, head) == json.loads(BODY)
    assert verify(REGISTRY, head, BODY.encode(), now=now).caller.name == "hook"


def test_each_source_is_told_apart_by_its_secret() -> None:
    assert verify(REGISTRY, headers(signature(OTHER)), BODY.encode(), now=NOW).caller.name == "other"
    # Signatures of two sources in one request name no single caller.
    assert refused(headers(f"{signature(OTHER)} {signature(OLD)}")).code == "signature_mismatch"


@pytest.mark.parametrize("offset", [-TOLERANCE_SECONDS, TOLERANCE_SECONDS, 0, -1, 1])
def test_timestamps_up_to_exactly_five_minutes_either_way_are_accepted(offset: int) -> None:
    stamp = NOW + offset
    head = headers(signature(NEW, timestamp=stamp), timestamp=stamp)
    assert verify(REGISTRY, head, BODY.encode(), now=NOW + 0.999).caller.name == "hook"
    assert verify(REGISTRY, head, BODY.encode(), now=NOW).caller.name == "hook"


@pytest.mark.parametrize("offset", [-TOLERANCE_SECONDS - 1, TOLERANCE_SECONDS + 1, -86400, 10**6])
def test_timestamps_just_over_five_minutes_or_in_the_future_are_refused(offset: int) -> None:
    stamp = NOW + offset
    error = refused(headers(signature(NEW, timestamp=stamp), timestamp=stamp))
    assert error.code == "signature_timestamp_out_of_range"
    assert ("future" in error.detail) is (offset > 0)


@pytest.mark.parametrize(
    ("head", "code"),
    [
        ({}, "signature_missing"),
        ({"webhook-id": "msg_1", "webhook-timestamp": str(NOW)}, "signature_missing"),
        (headers(signature(NEW)) | {"webhook-id": ""}, "signature_missing"),
        (headers("v1" + signature(NEW).removeprefix("v1,")), "signature_malformed"),  # no comma
        (headers("v1,not base64!"), "signature_malformed"),
        (headers("v1,c2hvcnQ="), "signature_malformed"),  # base64, but not 32 bytes
        (headers("v1,ÄÖÜ" + signature(NEW)[3:]), "signature_malformed"),  # not ASCII
        (headers(",abc"), "signature_malformed"),
        (headers("v1a,c2hvcnQ="), "signature_malformed"),  # no v1 signature at all
        (headers(" ".join([signature(OLD)] * 11)), "signature_malformed"),
        (headers(signature(NEW)) | {"webhook-timestamp": "17e8"}, "signature_malformed"),
        (headers(signature(NEW)) | {"webhook-timestamp": "-5"}, "signature_malformed"),
        (headers(signature(NEW)) | {"webhook-id": "msg.1"}, "signature_malformed"),
        (headers(signature(NEW)) | {"webhook-id": "msg 1"}, "signature_malformed"),
        (headers(signature(NEW)) | {"webhook-id": "x" * 256}, "signature_malformed"),
        (headers(signature(NEW, msg_id="msg_2")), "signature_mismatch"),  # id not what was signed
        (headers(signature(NEW, timestamp=NOW - 1)), "signature_mismatch"),  # timestamp not what was signed
        (
            headers(signature("whsec_" + base64.b64encode(b"sandbox-revoked-secret-0000").decode())),
            "signature_mismatch",
        ),
    ],
)
def test_missing_malformed_or_wrong_signatures_are_401_with_a_reason(head: dict[str, str], code: str) -> None:
    error = refused(head)
    assert error.code == code
    problem = json.dumps(error.problem())
    # Nothing that helps an attacker: no secret, no expected signature.
    for secret in (OLD, NEW, OTHER):
        assert secret.removeprefix("whsec_")[:12] not in problem
    assert signature(NEW).removeprefix("v1,")[:12] not in problem


def test_a_changed_body_byte_breaks_the_signature() -> None:
    assert refused(headers(signature(NEW)), body=BODY.replace("1001", "1002")).code == "signature_mismatch"
    assert refused(headers(signature(NEW)), body=BODY + " ").code == "signature_mismatch"


def test_the_raw_bytes_are_verified_even_when_they_are_not_utf8() -> None:
    # The verifier never decodes the body: non-UTF-8 bytes verify as signed, and intake refuses them later.
    raw = b'{"provider": "\xff"}'
    content = b"msg_1." + str(NOW).encode() + b"." + raw
    sig = base64.b64encode(
        hmac.new(b"sandbox-signing-secret-0002", content, hashlib.sha256).digest()
    ).decode()
    assert verify(REGISTRY, headers(f"v1,{sig}"), raw, now=NOW).caller.name == "hook"
