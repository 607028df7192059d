"""multipart/form-data by bounded rules (relay/web/multipart.py): what parses, what is refused."""

from __future__ import annotations

import time

import pytest

from relay.errors import RelayError
from relay.web import decoding
from relay.web.multipart import MAX_PART_HEADER_BYTES, MAX_PART_HEADER_LINES

TYPE = "multipart/form-data; boundary=XyZ"


def _decode(body: bytes, content_type: str = TYPE) -> dict[str, object]:
    return decoding.decode_body(body, content_type)


def test_fields_parse_with_quoted_names_tokens_and_multiline_values() -> None:
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="a"\r\n'
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nv1\r\n"
        b'--XyZ\r\nContent-Disposition: form-data; name="b\\"q"\r\n\r\nline1\r\nline2\r\n'
        b"--XyZ\r\nContent-Disposition: form-data; name=c\r\n\r\n\xc3\xa9\r\n"
        b"--XyZ--\r\n"
    )
    assert _decode(body) == {"a": "v1", 'b"q': "line1\r\nline2", "c": "\u00e9"}


def test_a_preamble_and_an_epilogue_are_ignored() -> None:
    body = b'preamble\r\n--XyZ\r\nContent-Disposition: form-data; name="a"\r\n\r\nv\r\n--XyZ--\r\nepilogue'
    assert _decode(body) == {"a": "v"}


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        pytest.param(
            b'--XyZ\r\nContent-Disposition: form-data; name="a"\nX: y\r\n\r\nv\r\n--XyZ--\r\n',
            TYPE,
            400,
            id="bare LF in headers",
        ),
        pytest.param(
            b'--XyZ\r\nContent-Disposition: form-data; name="a"\r\n folded\r\n\r\nv\r\n--XyZ--\r\n',
            TYPE,
            400,
            id="folded header",
        ),
        pytest.param(
            b'--XyZ\r\nContent-Disposition: form-data; name="a"' + b";" * 2000 + b"\r\n\r\nv\r\n--XyZ--\r\n",
            TYPE,
            400,
            id="long header",
        ),
        pytest.param(
            b'--XyZ\r\nContent-Disposition: form-data; name="a"'
            + b"\r\nX: y" * MAX_PART_HEADER_LINES
            + b"\r\n\r\nv\r\n--XyZ--\r\n",
            TYPE,
            400,
            id="too many headers",
        ),
        pytest.param(
            b'--XyZ\r\nContent-Disposition: form-data; name="a" (comment)\r\n\r\nv\r\n--XyZ--\r\n',
            TYPE,
            400,
            id="a comment",
        ),
        pytest.param(
            b"--XyZ\r\nContent-Disposition: form-data; name*=utf-8''a\r\n\r\nv\r\n--XyZ--\r\n",
            TYPE,
            400,
            id="RFC 2231 name only",
        ),
        pytest.param(
            b'--XyZ\r\nContent-Disposition: form-data; name="a"; filename="f.txt"\r\n\r\nv\r\n--XyZ--\r\n',
            TYPE,
            415,
            id="a file",
        ),
        pytest.param(
            b'--XyZ\r\nContent-Disposition: form-data; name="a"\r\n\r\nv\r\n',
            TYPE,
            400,
            id="no closing delimiter",
        ),
        pytest.param(b"--XyZ--\r\n", TYPE, 400, id="no parts"),
        pytest.param(
            b'--XyZjunk\r\nContent-Disposition: form-data; name="a"\r\n\r\nv\r\n--XyZ--\r\n',
            TYPE,
            400,
            id="junk after a delimiter",
        ),
        pytest.param(b"x", "multipart/form-data; boundary=" + "b" * 71, 400, id="boundary over 70"),
        pytest.param(b"x", 'multipart/form-data; boundary="a b "', 400, id="boundary ending in a space"),
        pytest.param(
            b'--XyZ\r\nContent-Disposition: form-data; name="\xff"\r\n\r\nv\r\n--XyZ--\r\n',
            TYPE,
            400,
            id="a name not UTF-8",
        ),
    ],
)
def test_malformed_or_oversized_parts_are_a_4xx(body: bytes, content_type: str, status: int) -> None:
    with pytest.raises(RelayError) as caught:
        _decode(body, content_type)
    assert caught.value.status == status


def test_part_count_and_header_size_are_bounded_before_parsing() -> None:
    many = b"".join(
        b'--XyZ\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nv\r\n' % i for i in range(1000)
    )
    started = time.process_time()
    with pytest.raises(RelayError) as caught:
        _decode(many + b"--XyZ--\r\n")
    assert caught.value.code == "too_many_fields"
    huge_header = b"--XyZ\r\nContent-Disposition: form-data" + b";" * 60_000 + b"\r\n\r\nv\r\n--XyZ--\r\n"
    with pytest.raises(RelayError) as caught:
        _decode(huge_header)
    assert str(MAX_PART_HEADER_BYTES) in caught.value.detail
    assert time.process_time() - started < 0.05
