"""Form tools' own webhooks: `POST /v1/intake/{source}` and `POST /v1/intake/{source}/{token}`.

A form tool can set a URL, not headers, so the URL names the source. Each kind gets the tool's own
proof, checked over the raw body before anything parses it:

- `typeform`: `Typeform-Signature: sha256=<base64 HMAC-SHA256 of the body>`;
- `tally`: `Tally-Signature: <base64 HMAC-SHA256 of the body>`;
- `webflow`: `x-webflow-signature`, hex HMAC-SHA256 of `<x-webflow-timestamp>:<body>`, the timestamp
  in milliseconds and within 5 minutes of the relay's clock;
- `jotform`, `fillout` (they do not sign): the secret token in the URL's last segment, whose
  SHA-256 the registry keeps; every stored hash is compared, in constant time.

Then the payload is decoded (relay/web/decoding.py: the same bounds as every body), the tool's own
delivery id read (the idempotency key: a redelivery moves nothing), and the source's mapping applied:
JMESPath expressions, compiled when the registry was parsed, over the payload (Jotform: over its
`rawRequest` JSON), plus the source's constants. A mapped field that finds nothing is a 422 naming
the canonical field and its expression.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jmespath

from relay.callers.registry import (
    Caller,
    FormSource,
    Registry,
    SignedFormSource,
    TokenFormSource,
    hash_api_key,
)
from relay.errors import (
    FieldProblem,
    RelayError,
    invalid,
    invalid_field,
    malformed,
    not_found,
    unauthenticated,
)
from relay.web import decoding

# Webflow: both ways, a timestamp this far from the relay's clock is accepted, a millisecond more is not.
WEBFLOW_TOLERANCE_MS = 5 * 60 * 1000
MAX_SIGNATURE_HEADER_LENGTH = 512
MAX_PATH_TOKEN_LENGTH = 128
# A tool's payload nests deeper than a request (Typeform: form_response.answers[].field.ref).
MAX_FORM_PAYLOAD_DEPTH = 10
MAX_DELIVERY_ID_LENGTH = 255
SIGNATURE_BYTES = hashlib.sha256().digest_size
# Fields a submission may leave blank: a mapping that finds nothing there sends nothing.
OPTIONAL_FIELDS = frozenset({"reason", "notes", "answers", "end", "duration_minutes", "rescheduled_by"})
_DELIVERY_ID = re.compile(r"^[\x21-\x7e]{1,255}$")
_DIGITS = re.compile(r"^[0-9]{1,16}$")
_HEX_SIGNATURE = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class DeliveryId:
    """Where a tool puts its own delivery id, and the name its docs give it (for messages)."""

    expression: str
    label: str


# The tool's own id of each delivery: the same on every redelivery, so it is the idempotency key.
DELIVERY_IDS: Mapping[str, DeliveryId] = {
    "typeform": DeliveryId("event_id", "event_id"),
    "tally": DeliveryId("eventId", "eventId"),
    "webflow": DeliveryId("payload.id", "payload.id"),
    "jotform": DeliveryId("submissionID", "submissionID"),
    # The submission object at the top, or (the webhook's documented body) under `submission`.
    "fillout": DeliveryId("submission.submissionId || submissionId", "submission.submissionId"),
}
_COMPILED_DELIVERY_IDS = {kind: jmespath.compile(d.expression) for kind, d in DELIVERY_IDS.items()}


@dataclass(frozen=True)
class IntakeAdmission:
    caller: Caller
    source: FormSource
    # The canonical fields: the source's constants and what its mapping found.
    fields: dict[str, Any]
    # The tool's own delivery id: the idempotency key (scoped by source, as all keys are).
    delivery_id: str


def _mismatch(detail: str) -> RelayError:
    return unauthenticated(detail, "signature_mismatch")


def _missing(header: str) -> RelayError:
    return unauthenticated(
        f"This source's deliveries are signed: the {header} header is missing. Set the signing secret "
        "in the form tool's webhook settings.",
        "signature_missing",
    )


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name, "").strip()
    if not value:
        raise _missing(name)
    if len(value) > MAX_SIGNATURE_HEADER_LENGTH:
        raise unauthenticated(f"The {name} header is too long.", "signature_malformed")
    return value


def _base64_signature(value: str, name: str) -> bytes:
    try:
        signature = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise unauthenticated(f"The {name} signature is not valid base64.", "signature_malformed") from None
    if len(signature) != SIGNATURE_BYTES:
        raise unauthenticated(f"The {name} signature is not an HMAC-SHA256.", "signature_malformed")
    return signature


def _any_secret_signed(source: SignedFormSource, content: bytes, presented: bytes) -> bool:
    """Every secret, every time (no early exit): rotation keeps several."""
    matched = False
    for secret in source.signing_secrets:
        expected = hmac.new(secret.encode(), content, hashlib.sha256).digest()
        matched |= hmac.compare_digest(expected, presented)
    return matched


def _typeform(source: SignedFormSource, headers: Mapping[str, str], body: bytes, now: float) -> None:
    del now  # Typeform signs no timestamp
    value = _header(headers, "typeform-signature")
    scheme, equals, encoded = value.partition("=")
    if scheme != "sha256" or not equals:
        raise unauthenticated("Typeform-Signature is 'sha256=<base64 signature>'.", "signature_malformed")
    if not _any_secret_signed(source, body, _base64_signature(encoded, "Typeform-Signature")):
        raise _mismatch("Typeform-Signature does not match: check the webhook's secret in Typeform.")


def _tally(source: SignedFormSource, headers: Mapping[str, str], body: bytes, now: float) -> None:
    del now  # Tally signs no timestamp
    presented = _base64_signature(_header(headers, "tally-signature"), "Tally-Signature")
    if not _any_secret_signed(source, body, presented):
        raise _mismatch("Tally-Signature does not match: check the webhook's signing secret in Tally.")


def _webflow(source: SignedFormSource, headers: Mapping[str, str], body: bytes, now: float) -> None:
    timestamp = _header(headers, "x-webflow-timestamp")
    signature = _header(headers, "x-webflow-signature")
    if not _DIGITS.match(timestamp):
        raise unauthenticated(
            "x-webflow-timestamp is milliseconds since the Unix epoch.", "signature_malformed"
        )
    if not _HEX_SIGNATURE.match(signature):
        raise unauthenticated("x-webflow-signature is a hex HMAC-SHA256.", "signature_malformed")
    if abs(int(now * 1000) - int(timestamp)) > WEBFLOW_TOLERANCE_MS:
        raise unauthenticated(
            "x-webflow-timestamp is more than 5 minutes from the relay's clock; Webflow signs each "
            "delivery when it sends it.",
            "signature_timestamp_out_of_range",
        )
    content = f"{timestamp}:".encode() + body
    if not _any_secret_signed(source, content, bytes.fromhex(signature)):
        raise _mismatch("x-webflow-signature does not match: check the webhook's secret from Webflow.")


_VERIFIERS: Mapping[str, Callable[[SignedFormSource, Mapping[str, str], bytes, float], None]] = {
    "typeform": _typeform,
    "tally": _tally,
    "webflow": _webflow,
}


def _check_path_token(source: TokenFormSource, token: str | None) -> None:
    if not token:
        raise unauthenticated(
            "This source's intake URL ends with its secret token: /v1/intake/<source>/<token>.",
            "token_missing",
        )
    presented = hash_api_key(token[:MAX_PATH_TOKEN_LENGTH])
    matched = False
    for stored in source.path_token_sha256:  # every hash, every time
        matched |= hmac.compare_digest(presented, stored)
    if not matched or len(token) > MAX_PATH_TOKEN_LENGTH:
        raise unauthenticated("The intake URL's token is not valid for this source.", "token_invalid")


def form_source(registry: Registry, name: str) -> FormSource:
    source = registry.sources.get(name)
    if not isinstance(source, SignedFormSource | TokenFormSource):
        # The same answer for "no such source" and "not a form source": nothing to probe.
        raise not_found("No form intake with this name.", "intake_not_found")
    return source


def verify(
    registry: Registry, name: str, token: str | None, headers: Mapping[str, str], body: bytes, *, now: float
) -> tuple[Caller, FormSource]:
    """The form source `name`, once the request carries its proof; a 401 saying what to fix otherwise."""
    source = form_source(registry, name)
    if isinstance(source, TokenFormSource):
        _check_path_token(source, token)
    else:
        if token is not None:  # signed kinds have one URL; a token here is a copy-paste mistake
            raise not_found("This source's intake URL has no token: /v1/intake/<source>.", "intake_not_found")
        _VERIFIERS[source.kind](source, headers, body, now)
    return Caller.of(name, source), source


def _payload(source: FormSource, decoded: dict[str, Any]) -> dict[str, Any]:
    """What the mapping reads: the decoded body, or for Jotform its `rawRequest` JSON object."""
    if source.kind != "jotform":
        return decoded
    raw = decoded.get("rawRequest")
    if not isinstance(raw, str):
        raise invalid_field("rawRequest", "A Jotform delivery carries its answers in rawRequest.", "missing")
    try:
        return decoding.decode_body(raw.encode(), decoding.JSON, max_depth=MAX_FORM_PAYLOAD_DEPTH)
    except RelayError as error:
        raise invalid_field("rawRequest", f"rawRequest is not a JSON object: {error.detail}") from None


def delivery_id(kind: str, decoded: dict[str, Any]) -> str:
    found = _COMPILED_DELIVERY_IDS[kind].search(decoded)
    if isinstance(found, int) and not isinstance(found, bool):
        found = str(found)
    label = DELIVERY_IDS[kind].label
    if not isinstance(found, str) or not found:
        raise invalid_field(label, f"The delivery has no {label}: is this a {kind} webhook?", "missing")
    if not _DELIVERY_ID.match(found):
        raise invalid_field(label, f"{label} is 1 to {MAX_DELIVERY_ID_LENGTH} visible ASCII characters.")
    return found


def _mapped_value(name: str, value: Any) -> tuple[bool, Any, str | None]:
    """(found, value, why not usable): None, '' and [] are "nothing"; a list or object is not a value."""
    if value is None or value in ("", [], {}):
        return False, None, None
    if name == "answers":
        return (True, value, None) if isinstance(value, dict) else (True, None, "an object")
    if isinstance(value, list) and len(value) == 1 and not isinstance(value[0], dict | list):
        value = value[0]  # a filter expression's one match
    if isinstance(value, dict | list):
        return True, None, "a list or object, not one value"
    return True, value, None


def apply_mapping(source: FormSource, payload: dict[str, Any]) -> dict[str, Any]:
    """The canonical fields: constants, then each mapped field's value (422 naming what found nothing)."""
    fields: dict[str, Any] = dict(source.constants)
    problems: list[FieldProblem] = []
    for name, compiled in source.compiled_mapping.items():
        expression = source.mapping[name]
        found, value, unusable = _mapped_value(name, compiled.search(payload))
        if unusable is not None:
            problems.append(
                FieldProblem(name, f"The mapping {expression!r} found {unusable}.", "mapping_not_a_value")
            )
        elif found:
            fields[name] = value
        elif name not in OPTIONAL_FIELDS:
            problems.append(
                FieldProblem(
                    name, f"The mapping {expression!r} found nothing in this delivery.", "mapping_missed"
                )
            )
    if problems:
        named = "; ".join(f"{p.field} ({source.mapping[p.field]})" for p in problems)
        raise invalid(problems, f"The source's mapping found no usable value for: {named}.")
    return fields


def admit(
    registry: Registry,
    name: str,
    token: str | None,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    on_caller: Callable[[Caller], None] | None = None,
) -> IntakeAdmission:
    """Verify, decode, read the delivery id and map; `on_caller` hears who it is once verified."""
    caller, source = verify(registry, name, token, headers, body, now=now)
    if on_caller is not None:
        on_caller(caller)
    decoded = decoding.decode_body(body, headers.get("content-type"), max_depth=MAX_FORM_PAYLOAD_DEPTH)
    if not decoded:
        raise malformed("The delivery is empty.")
    key = delivery_id(source.kind, decoded)
    fields = apply_mapping(source, _payload(source, decoded))
    return IntakeAdmission(caller=caller, source=source, fields=fields, delivery_id=key)
