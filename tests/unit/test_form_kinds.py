"""Form tools' webhooks without I/O: the registry's form kinds, each tool's proof, the mapping."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.callers import intake
from relay.callers.registry import Registry, parse_registry
from relay.errors import RelayError
from relay.reschedule.booking_times import start_of

NOW = 1_800_000_000.0
SECRET = "sandbox-unit-form-secret-01"
TOKEN = "sandbox-unit-path-token-01"


def _form(kind: str, **extra: Any) -> dict[str, Any]:
    proof = (
        {"signing_secrets": [SECRET]}
        if kind in ("typeform", "tally", "webflow")
        else {"path_token_sha256": [hashlib.sha256(TOKEN.encode()).hexdigest()]}
    )
    return {
        "kind": kind,
        **proof,
        "providers": {"novacal": ["default"]},
        "mapping": {"booking_id": "b", "start": "s"},
        "constants": {"provider": "novacal", "timezone": "UTC"},
        **extra,
    }


def registry(kind: str, **extra: Any) -> Registry:
    return Registry.model_validate({"sources": {"f": _form(kind, **extra)}})


BODY = json.dumps(
    {"event_id": "e1", "eventId": "e1", "payload": {"id": "e1"}, "b": "bk", "s": "2031-01-01T10:00"}
).encode()
JSON_HEADERS = {"content-type": "application/json"}


def _b64(secret: str, content: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), content, hashlib.sha256).digest()).decode()


def signed(
    kind: str, body: bytes = BODY, secret: str = SECRET, at_ms: int = int(NOW * 1000)
) -> dict[str, str]:
    if kind == "typeform":
        return JSON_HEADERS | {"typeform-signature": "sha256=" + _b64(secret, body)}
    if kind == "tally":
        return JSON_HEADERS | {"tally-signature": _b64(secret, body)}
    mac = hmac.new(secret.encode(), f"{at_ms}:".encode() + body, hashlib.sha256).hexdigest()
    return JSON_HEADERS | {"x-webflow-timestamp": str(at_ms), "x-webflow-signature": mac}


def _code(call: Any) -> str:
    with pytest.raises(RelayError) as caught:
        call()
    return caught.value.code


@pytest.mark.parametrize("kind", ["typeform", "tally", "webflow"])
def test_each_signed_kind_accepts_its_own_signature_only(kind: str) -> None:
    reg = registry(kind)
    admitted = intake.admit(reg, "f", None, signed(kind), BODY, now=NOW)
    assert (admitted.delivery_id, admitted.fields["booking_id"]) == ("e1", "bk")
    assert admitted.caller.delivery == "auto"  # forms default to auto delivery
    assert (
        _code(
            lambda: intake.admit(reg, "f", None, signed(kind, secret="sandbox-other-secret-0"), BODY, now=NOW)
        )
        == "signature_mismatch"
    )
    assert (
        _code(lambda: intake.admit(reg, "f", None, signed(kind), BODY + b"\n", now=NOW))
        == "signature_mismatch"
    )
    assert _code(lambda: intake.admit(reg, "f", None, JSON_HEADERS, BODY, now=NOW)) == "signature_missing"
    # Another kind's header is not this kind's proof
    other = "tally" if kind == "typeform" else "typeform"
    assert _code(lambda: intake.admit(reg, "f", None, signed(other), BODY, now=NOW)) == "signature_missing"


def test_a_rotated_secret_still_verifies() -> None:
    reg = registry("tally", signing_secrets=["sandbox-new-form-secret-02", SECRET])
    assert intake.admit(reg, "f", None, signed("tally"), BODY, now=NOW).delivery_id == "e1"


@pytest.mark.parametrize("offset_ms", [-300_001, 300_001])
def test_webflow_refuses_a_timestamp_outside_five_minutes(offset_ms: int) -> None:
    headers = signed("webflow", at_ms=int(NOW * 1000) + offset_ms)
    assert _code(lambda: intake.admit(registry("webflow"), "f", None, headers, BODY, now=NOW)) == (
        "signature_timestamp_out_of_range"
    )


@pytest.mark.parametrize("offset_ms", [-300_000, 300_000])
def test_webflow_accepts_the_edges_of_the_window(offset_ms: int) -> None:
    headers = signed("webflow", at_ms=int(NOW * 1000) + offset_ms)
    assert intake.admit(registry("webflow"), "f", None, headers, BODY, now=NOW).delivery_id == "e1"


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"typeform-signature": "sha1=abc"}, "signature_malformed"),
        ({"typeform-signature": "sha256=not base64!"}, "signature_malformed"),
        ({"typeform-signature": "sha256=" + base64.b64encode(b"short").decode()}, "signature_malformed"),
    ],
)
def test_a_malformed_typeform_signature_says_so(headers: dict[str, str], code: str) -> None:
    assert (
        _code(lambda: intake.admit(registry("typeform"), "f", None, JSON_HEADERS | headers, BODY, now=NOW))
        == code
    )


def test_a_token_kind_checks_the_path_token() -> None:
    reg = registry("fillout", mapping={"booking_id": "b", "start": "s"})
    body = json.dumps({"submission": {"submissionId": "sub-1"}, "b": "bk", "s": "x"}).encode()
    assert intake.admit(reg, "f", TOKEN, JSON_HEADERS, body, now=NOW).delivery_id == "sub-1"
    assert (
        _code(lambda: intake.admit(reg, "f", "sandbox-wrong", JSON_HEADERS, body, now=NOW)) == "token_invalid"
    )
    assert _code(lambda: intake.admit(reg, "f", None, JSON_HEADERS, body, now=NOW)) == "token_missing"
    assert (
        _code(lambda: intake.admit(reg, "f", TOKEN + "x" * 200, JSON_HEADERS, body, now=NOW))
        == "token_invalid"
    )


def test_a_signed_kind_has_no_token_url_and_other_sources_no_intake() -> None:
    assert (
        _code(lambda: intake.admit(registry("tally"), "f", "x", signed("tally"), BODY, now=NOW))
        == "intake_not_found"
    )
    assert (
        _code(lambda: intake.admit(registry("tally"), "nope", None, signed("tally"), BODY, now=NOW))
        == "intake_not_found"
    )


def test_jotforms_mapping_reads_the_raw_request_object() -> None:
    reg = registry("jotform", mapping={"booking_id": "q3_bookingId", "date": "join('-', [d.y, d.m, d.d])"})
    raw = json.dumps({"q3_bookingId": "bk-7", "d": {"y": "2031", "m": "02", "d": "03"}})
    boundary = "sandbox-b"
    body = (
        "".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{n}"\r\n\r\n{v}\r\n'
            for n, v in {"submissionID": "5800000000000000001", "rawRequest": raw}.items()
        )
        + f"--{boundary}--\r\n"
    )
    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    admitted = intake.admit(reg, "f", TOKEN, headers, body.encode(), now=NOW)
    assert admitted.delivery_id == "5800000000000000001"
    assert admitted.fields == {
        "provider": "novacal",
        "timezone": "UTC",
        "booking_id": "bk-7",
        "date": "2031-02-03",
    }


def test_a_mapping_that_misses_names_each_field_and_expression() -> None:
    reg = registry("tally", mapping={"booking_id": "nothing.here", "start": "s", "notes": "absent"})
    with pytest.raises(RelayError) as caught:
        intake.admit(reg, "f", None, signed("tally"), BODY, now=NOW)
    assert caught.value.status == 422
    assert [(e.field, e.code) for e in caught.value.errors] == [("booking_id", "mapping_missed")]
    assert "'nothing.here'" in caught.value.errors[0].message  # `notes` is optional: left out


def test_a_mapping_that_finds_an_object_is_not_a_value() -> None:
    reg = registry("tally", mapping={"booking_id": "payload", "start": "s"})
    with pytest.raises(RelayError) as caught:
        intake.admit(reg, "f", None, signed("tally"), BODY, now=NOW)
    assert [(e.field, e.code) for e in caught.value.errors] == [("booking_id", "mapping_not_a_value")]


def test_a_delivery_without_the_tools_id_is_refused_naming_it() -> None:
    body = json.dumps({"b": "bk", "s": "x"}).encode()
    with pytest.raises(RelayError) as caught:
        intake.admit(registry("typeform"), "f", None, signed("typeform", body), body, now=NOW)
    assert caught.value.errors[0].field == "event_id"


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"mapping": {"booking_id": "a.[["}}, "not a JMESPath expression"),
        ({"mapping": {"booking_id": "a", "colour": "b"}}, "not a canonical field"),
        ({"mapping": {"date": "a"}}, "map booking_id"),
        ({"mapping": {"booking_id": "a", "dry_run": "b"}}, "not a canonical field"),
        ({"constants": {"booking_id": "1"}}, "either mapped or a constant"),
        ({"signing_secrets": ["short"]}, "at least 16"),
    ],
)
def test_the_registry_refuses_a_form_source_that_cannot_work(change: dict[str, Any], complaint: str) -> None:
    raw = {"sources": {"f": _form("typeform") | change}}
    with pytest.raises(ValueError, match=complaint):
        Registry.model_validate(raw)
    with pytest.raises(RelayError):  # and the relay's reader names no value from it
        parse_registry(raw)


def test_a_secret_shared_by_two_form_sources_is_refused() -> None:
    with pytest.raises(ValueError, match="more than one source"):
        Registry.model_validate({"sources": {"a": _form("tally"), "b": _form("typeform")}})


@given(st.binary(max_size=256))
def test_no_body_passes_a_typeform_source_without_the_right_signature(body: bytes) -> None:
    forged = JSON_HEADERS | {"typeform-signature": "sha256=" + _b64("sandbox-attacker-secret", body)}
    with pytest.raises(RelayError) as caught:
        intake.admit(registry("typeform"), "f", None, forged, body, now=NOW)
    assert caught.value.status == 401


def test_a_read_bookings_start_is_shown_in_its_own_zone() -> None:
    # Cal.com: UTC start, the attendee's zone; Acuity: an offset start and its `timezone`
    calcom = {"data": {"start": "2031-03-06T23:00:00.000Z", "attendees": [{"timeZone": "Asia/Tokyo"}]}}
    acuity = {"datetime": "2031-03-06T09:00:00-0500", "timezone": "America/New_York"}
    read_calcom, read_acuity = start_of(calcom), start_of(acuity)
    assert read_calcom is not None
    assert read_acuity is not None
    assert (read_calcom[0].isoformat(), read_calcom[1]) == ("2031-03-07T08:00:00+09:00", "Asia/Tokyo")
    assert (read_acuity[0].isoformat(), read_acuity[1]) == ("2031-03-06T09:00:00-05:00", "America/New_York")
    assert start_of({"data": {"start": "yesterday"}}) is None
    assert start_of(
        {"data": {"start": "2031-03-06T23:00:00Z", "attendees": [{"timeZone": "Mars/Base"}]}}
    ) == (
        datetime(2031, 3, 6, 23, tzinfo=UTC),
        None,
    )
