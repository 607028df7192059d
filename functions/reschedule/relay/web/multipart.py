"""multipart/form-data (RFC 7578), fields only, parsed by bounded rules before any work is done.

The standard library's email parser was used before: its header parser is quadratic on some inputs
(50 KB of `;` in one part header cost 27 s of CPU) and recursive on others (nested comments raised
RecursionError, a 500 with a 170 KB traceback), and it ran before the caller was known. This parser
counts the parts and measures every part's header block first, then reads each header with one
anchored expression over at most MAX_PART_HEADER_BYTES: its cost is linear in the body.
"""

from __future__ import annotations

import re

from relay.errors import echo, malformed, unsupported_media_type

# RFC 2046 5.1.1: 1 to 70 characters from this set (a space only inside).
MAX_BOUNDARY = 70
_BOUNDARY = re.compile(r"^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$")
# A form field's part has Content-Disposition and perhaps Content-Type: a browser sends no more.
MAX_PART_HEADER_BYTES = 1024
MAX_PART_HEADER_LINES = 4
# Matched whole (fullmatch): a bare CR or LF inside a line is not a header.
_HEADER_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}):[ \t]*([^\r\n]*?)[ \t]*")
# `form-data; name="a"; filename="b"`: tokens or quoted strings (RFC 7578 4.2), nothing else.
_PARAM = r'[ \t]*;[ \t]*([A-Za-z0-9_\-*]{1,32})=("(?:[^"\\\r\n]|\\[^\r\n])*"|[^;"\s]+)'
_DISPOSITION = re.compile(rf"^form-data((?:{_PARAM})*)[ \t]*;?[ \t]*$", re.IGNORECASE)
_PARAMS = re.compile(_PARAM)
_QUOTED_PAIR = re.compile(r"\\(.)")


def boundary_of(params: dict[str, str]) -> str:
    boundary = params.get("boundary", "")
    if not boundary:
        raise malformed("The multipart Content-Type has no boundary.", "invalid_multipart")
    if not _BOUNDARY.match(boundary):
        raise malformed(
            f"The multipart boundary is not 1 to {MAX_BOUNDARY} characters of RFC 2046's set.",
            "invalid_multipart",
        )
    return boundary


def split_parts(body: bytes, boundary: str, max_parts: int) -> list[tuple[str, bytes]]:
    """The (field name, value bytes) of each part, in order; a bound is checked before it is spent."""
    delimiter = b"\r\n--" + boundary.encode("ascii")
    framed = b"\r\n" + body
    if framed.count(delimiter) > max_parts + 1:  # one delimiter per part, and the closing one
        raise malformed(f"The body has more than {max_parts} fields.", "too_many_fields")
    segments = framed.split(delimiter)
    parts: list[tuple[str, bytes]] = []
    for segment in segments[1:]:  # segments[0] is the preamble, ignored (RFC 2046)
        if segment.startswith(b"--"):
            if not parts:
                break
            return parts
        parts.append(_part(segment))
    raise malformed("The multipart body does not parse.", "invalid_multipart")


def _part(segment: bytes) -> tuple[str, bytes]:
    line_end = segment.find(b"\r\n")
    if line_end < 0 or segment[:line_end].strip(b" \t"):  # only transport padding after a delimiter
        raise malformed("The multipart body does not parse.", "invalid_multipart")
    head_end = segment.find(b"\r\n\r\n", line_end, line_end + MAX_PART_HEADER_BYTES + 4)
    if head_end < 0:
        raise malformed(
            f"A multipart part's headers do not end within {MAX_PART_HEADER_BYTES} bytes.",
            "invalid_multipart",
        )
    lines = segment[line_end + 2 : head_end].split(b"\r\n") if head_end > line_end else []
    if len(lines) > MAX_PART_HEADER_LINES:
        raise malformed(
            f"A multipart part has more than {MAX_PART_HEADER_LINES} headers.", "invalid_multipart"
        )
    headers: dict[str, str] = {}
    for line in lines:
        found = _HEADER_LINE.fullmatch(line)
        if found is None:
            raise malformed("A multipart part header does not parse.", "invalid_multipart")
        try:
            headers[found.group(1).decode("ascii").lower()] = found.group(2).decode("utf-8")
        except UnicodeDecodeError:
            raise malformed("A multipart part header is not valid UTF-8.", "invalid_encoding") from None
    name = _field_name(headers)
    if "content-transfer-encoding" in headers:
        # Deprecated for form data by RFC 7578 (4.7); decoding it would accept values in disguise.
        raise malformed(
            f"Part {echo(name)} has a Content-Transfer-Encoding; send form fields as plain text.",
            "invalid_multipart",
        )
    return name, segment[head_end + 4 :]


def _field_name(headers: dict[str, str]) -> str:
    disposition = _DISPOSITION.match(headers.get("content-disposition", ""))
    if disposition is None:
        raise malformed("A multipart part is not a form field.", "invalid_multipart")
    params: dict[str, str] = {}
    for key, value in _PARAMS.findall(disposition.group(1)):
        unquoted = _QUOTED_PAIR.sub(r"\1", value[1:-1]) if value.startswith('"') else value
        params.setdefault(key.lower(), unquoted)
    name = params.get("name")
    if not name:
        raise malformed("A multipart part has no field name.", "invalid_multipart")
    if "filename" in params or "filename*" in params:
        raise unsupported_media_type(f"File uploads are not accepted (part {echo(name)}).")
    return name
