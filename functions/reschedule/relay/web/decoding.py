"""Turn a raw request body into a flat mapping of field names as the caller sent them.

Three content types: JSON, urlencoded forms and multipart forms (fields only). Form values are
strings; JSON values keep their types. A field given twice in a form is an error, never a silent
choice (aliases are mapped onto canonical names by relay.fields).
"""

from __future__ import annotations

import json
import re
from email.message import Message
from typing import Any
from urllib.parse import parse_qsl

from relay.errors import FieldProblem, invalid, malformed, too_large, unsupported_media_type

MAX_BODY_BYTES = 64 * 1024
MAX_FIELDS = 100
MAX_JSON_DEPTH = 4

JSON = "application/json"
URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"

# Forms cannot nest: `answers[email]=...` or `answers.email=...` build the answers object.
_FORM_ANSWER = re.compile(r"^(?:answers|form_field_answers)(?:\[([^\[\]]{1,64})\]|\.([^.\[\]]{1,64}))$")


def media_type(content_type: str | None) -> tuple[str, dict[str, str]]:
    """`multipart/form-data; boundary=x` -> ("multipart/form-data", {"boundary": "x"})."""
    if not content_type:
        return "", {}
    message = Message()
    message["content-type"] = content_type
    params = {k.lower(): v for k, v in message.get_params(failobj=[])[1:]}
    return message.get_content_type(), params


def decode_body(body: bytes, content_type: str | None, *, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """Parse the body by its content type into {name: value} (names as the caller sent them).

    `max_depth`: a form tool's own payload (relay/callers/intake.py) nests deeper than a request.
    """
    if len(body) > MAX_BODY_BYTES:
        raise too_large(f"The body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}.")
    kind, params = media_type(content_type)
    if kind == JSON:
        return _decode_json(body, max_depth)
    if kind == URLENCODED:
        return _decode_urlencoded(body)
    if kind == MULTIPART:
        return _decode_multipart(body, content_type or "", params)
    if _looks_like_json(body):
        raise unsupported_media_type(f"The body looks like JSON: send the header Content-Type: {JSON}.")
    raise unsupported_media_type(
        f"Content-Type {kind or '(none)'!r} is not accepted; send {JSON}, {URLENCODED} or {MULTIPART}."
    )


def _looks_like_json(body: bytes) -> bool:
    """An object in braces: what `curl -d '{...}'` sends (as a form, or with no Content-Type)."""
    text = body.strip()
    return text.startswith(b"{") and text.endswith(b"}")


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise malformed("The body is not valid UTF-8.", "invalid_encoding") from exc


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise malformed(f"The JSON object has the key {key!r} more than once.", "duplicate_key")
        result[key] = value
    return result


def _depth(value: Any, level: int = 1) -> int:
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level)
    return level


def _decode_json(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    text = _text(body)
    try:
        value = json.loads(text, object_pairs_hook=_reject_duplicate_keys, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise malformed("The body is not valid JSON.", "invalid_json") from None
    if not isinstance(value, dict):
        raise malformed("The JSON body must be an object.", "invalid_json")
    if _depth(value) > max_depth:
        raise malformed(f"The JSON body nests deeper than {max_depth} levels.", "invalid_json")
    if len(value) > MAX_FIELDS:
        raise malformed(f"The body has more than {MAX_FIELDS} fields.", "too_many_fields")
    return value


def _no_constant(name: str) -> Any:
    raise malformed(f"The JSON body contains {name}, which is not valid JSON.", "invalid_json")


def _collect_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    if len(pairs) > MAX_FIELDS:
        raise malformed(f"The form has more than {MAX_FIELDS} fields.", "too_many_fields")
    result: dict[str, Any] = {}
    answers: dict[str, str] = {}
    for name, value in pairs:
        match = _FORM_ANSWER.match(name)
        target, key = (answers, match.group(1) or match.group(2)) if match else (result, name)
        if key in target:
            raise invalid([FieldProblem(name, "This field is given more than once.", "duplicate")])
        target[key] = value
    if answers:
        if "answers" in result or "form_field_answers" in result:
            raise invalid(
                [FieldProblem("answers", "Give answers either as one field or per key.", "duplicate")]
            )
        result["answers"] = answers
    return result


def _decode_urlencoded(body: bytes) -> dict[str, Any]:
    if _looks_like_json(body):  # a browser's form encodes braces, so this is JSON sent as a form
        raise malformed(
            f"The body looks like JSON but was sent as a form: send the header Content-Type: {JSON}.",
            "invalid_form",
        )
    text = _text(body)
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), errors="strict")
    except (ValueError, UnicodeDecodeError) as exc:
        raise malformed("The form body is not valid URL encoding.", "invalid_form") from exc
    return _collect_form(pairs)


def _decode_multipart(body: bytes, content_type: str, params: dict[str, str]) -> dict[str, Any]:
    if not params.get("boundary"):
        raise malformed("The multipart Content-Type has no boundary.", "invalid_multipart")
    # Imported here: email's parser and policies cost cold start, and only multipart bodies need them.
    from email.parser import BytesParser  # noqa: PLC0415
    from email.policy import HTTP  # noqa: PLC0415

    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    parts = message.get_payload() if message.is_multipart() else None
    if message.defects or not isinstance(parts, list) or not parts:
        raise malformed("The multipart body does not parse.", "invalid_multipart")
    pairs: list[tuple[str, str]] = []
    for part in parts:
        if not isinstance(part, Message):
            raise malformed("The multipart body does not parse.", "invalid_multipart")
        if part.defects or part.get_content_disposition() != "form-data":
            raise malformed("A multipart part is not a form field.", "invalid_multipart")
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or not name:
            raise malformed("A multipart part has no field name.", "invalid_multipart")
        if part.get_filename() is not None:
            raise unsupported_media_type(f"File uploads are not accepted (part {name!r}).")
        if "content-transfer-encoding" in part:
            # Deprecated for form data by RFC 7578 (4.7); decoding it would accept values in disguise.
            raise malformed(
                f"Part {name!r} has a Content-Transfer-Encoding; send form fields as plain text.",
                "invalid_multipart",
            )
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            raise malformed("A multipart part does not parse.", "invalid_multipart")
        pairs.append((name, _text(payload)))
    return _collect_form(pairs)
