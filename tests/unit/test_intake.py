"""Body decoding and alias mapping: no I/O."""

from __future__ import annotations

import json

import pytest

from relay import fields as canonical_fields
from relay.errors import RelayError
from relay.web import decoding as intake


def test_json_object_is_decoded_with_types_kept() -> None:
    assert intake.decode_body(b'{"id": 1001, "notes": "x"}', "application/json; charset=utf-8") == {
        "id": 1001,
        "notes": "x",
    }


def test_urlencoded_values_stay_strings_and_answers_nest() -> None:
    body = b"provider=novacal&duration_minutes=45&answers%5Bemail%5D=sandbox%40example.test&answers.name=Sam"
    fields = intake.decode_body(body, "application/x-www-form-urlencoded")
    assert fields == {
        "provider": "novacal",
        "duration_minutes": "45",
        "answers": {"email": "sandbox@example.test", "name": "Sam"},
    }


def _multipart(parts: list[tuple[str, str, str | None]], boundary: str = "XyZ") -> bytes:
    out = []
    for name, value, filename in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n{value}\r\n")
    return ("".join(out) + f"--{boundary}--\r\n").encode()


def test_multipart_fields_are_decoded() -> None:
    body = _multipart([("provider", "iclosed", None), ("id", "1002", None), ("notes", "née ✓", None)])
    fields = intake.decode_body(body, "multipart/form-data; boundary=XyZ")
    assert fields == {"provider": "iclosed", "id": "1002", "notes": "née ✓"}


def test_multipart_file_part_is_refused_with_415() -> None:
    body = _multipart([("provider", "iclosed", None), ("upload", "data", "a.txt")])
    with pytest.raises(RelayError) as caught:
        intake.decode_body(body, "multipart/form-data; boundary=XyZ")
    assert caught.value.status == 415


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b'{"a": 1', "application/json", 400, "invalid_json"),
        (b"[1, 2]", "application/json", 400, "invalid_json"),
        (b'{"a": 1, "a": 2}', "application/json", 400, "duplicate_key"),
        (b'{"a": NaN}', "application/json", 400, "invalid_json"),
        (b'{"a": {"b": {"c": {"d": {"e": 1}}}}}', "application/json", 400, "invalid_json"),
        (b"\xff\xfe", "application/json", 400, "invalid_encoding"),
        (
            b'--XyZ\r\nContent-Disposition: form-data; name="a"\r\n\r\nb\r\n',
            "multipart/form-data; boundary=XyZ",
            400,
            "invalid_multipart",
        ),
        (b"a=1", "multipart/form-data", 400, "invalid_multipart"),
        (b"a=1", "text/plain", 415, "unsupported_media_type"),
        (b"a=1", None, 415, "unsupported_media_type"),
        (b"a=1&&=", "application/x-www-form-urlencoded", 400, "invalid_form"),
    ],
)
def test_bodies_that_do_not_parse_get_a_clear_4xx(
    body: bytes, content_type: str | None, status: int, code: str
) -> None:
    with pytest.raises(RelayError) as caught:
        intake.decode_body(body, content_type)
    assert (caught.value.status, caught.value.code) == (status, code)


def test_body_over_the_cap_is_413() -> None:
    body = json.dumps({"notes": "x" * intake.MAX_BODY_BYTES}).encode()
    with pytest.raises(RelayError) as caught:
        intake.decode_body(body, "application/json")
    assert caught.value.status == 413


def test_repeated_form_field_is_refused() -> None:
    with pytest.raises(RelayError) as caught:
        intake.decode_body(b"id=1&id=2", "application/x-www-form-urlencoded")
    assert caught.value.status == 422
    assert caught.value.errors[0].field == "id"


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("booking_id", "booking_id"),
        ("id", "booking_id"),
        ("eventCallId", "booking_id"),
        ("event_id", "booking_id"),
        ("start", "start"),
        ("dateTime", "start"),
        ("timezone", "timezone"),
        ("timeZone", "timezone"),
        ("reason", "reason"),
        ("rescheduleReason", "reason"),
        ("user_id", "user_id"),
        ("userId", "user_id"),
        ("answers", "answers"),
        ("form_field_answers", "answers"),
        ("date", "date"),
        ("time", "time"),
        ("end", "end"),
        ("duration_minutes", "duration_minutes"),
        ("notes", "notes"),
        ("time_format", "time_format"),
        ("provider", "provider"),
        ("account", "account"),
    ],
)
def test_alias_table(alias: str, canonical: str) -> None:
    fields, names = canonical_fields.canonicalise({alias: "v"})
    assert fields == {canonical: "v"}
    assert names == {canonical: alias}


def test_two_aliases_for_one_field_are_refused_naming_both() -> None:
    with pytest.raises(RelayError) as caught:
        canonical_fields.canonicalise({"id": 1, "booking_id": 2})
    assert caught.value.status == 422
    problem = caught.value.errors[0]
    assert problem.field == "booking_id"
    assert "'id'" in problem.message


def test_multipart_part_with_a_content_transfer_encoding_is_refused() -> None:
    # RFC 7578 deprecates it: 'aWNsb3NlZA==' must not quietly become 'iclosed'.
    body = (
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="provider"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        b"aWNsb3NlZA==\r\n"
        b"--XyZ--\r\n"
    )
    with pytest.raises(RelayError) as caught:
        intake.decode_body(body, "multipart/form-data; boundary=XyZ")
    assert caught.value.status == 400
    assert caught.value.code == "invalid_multipart"
    assert "Content-Transfer-Encoding" in caught.value.detail


@pytest.mark.parametrize(
    "body",
    [b'{"provider": "iclosed", "id": 1001}', b'  {"reason": "a=b"}\n', b"{}"],
)
@pytest.mark.parametrize("content_type", [None, "application/x-www-form-urlencoded"])
def test_json_without_its_content_type_says_which_header_to_send(
    body: bytes, content_type: str | None
) -> None:
    # curl -d '{...}' sends a form Content-Type; some clients send none at all.
    with pytest.raises(RelayError) as caught:
        intake.decode_body(body, content_type)
    assert caught.value.status in (400, 415)
    assert "Content-Type: application/json" in caught.value.detail
