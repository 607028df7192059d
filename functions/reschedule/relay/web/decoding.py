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

from relay.errors import FieldProblem, echo, invalid, malformed, too_large, unsupported_media_type
from relay.web import multipart

MAX_BODY_BYTES = 64 * 1024
MAX_FIELDS = 100
MAX_JSON_DEPTH = 4
# A media type and its parameters (a boundary is at most 70 characters): more is not a real client.
MAX_CONTENT_TYPE = 256

# Before json.loads: strings out (their brackets are text), then every byte but brackets out.
_JSON_STRING = re.compile(rb'"[^"]*"')  # after escaped backslashes and quotes are gone: linear
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_INNERMOST = re.compile(rb"\[\]|\{\}")

JSON = "application/json"
URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"

# Forms cannot nest: `answers[email]=...` or `answers.email=...` build the answers object.
_FORM_ANSWER = re.compile(r"^(?:answers|form_field_answers)(?:\[([^\[\]]{1,64})\]|\.([^.\[\]]{1,64}))$")


def media_type(content_type: str | None) -> tuple[str, dict[str, str]]:
    """`multipart/form-data; boundary=x` -> ("multipart/form-data", {"boundary": "x"})."""
    if not content_type:
        return "", {}
    if len(content_type) > MAX_CONTENT_TYPE:
        raise unsupported_media_type(f"The Content-Type is longer than {MAX_CONTENT_TYPE} characters.")
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
        return _decode_multipart(body, params)
    if _looks_like_json(body):
        raise unsupported_media_type(f"The body looks like JSON: send the header Content-Type: {JSON}.")
    raise unsupported_media_type(
        f"Content-Type {echo(kind or '(none)')} is not accepted; send {JSON}, {URLENCODED} or {MULTIPART}."
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
            raise malformed(f"The JSON object has the key {echo(key)} more than once.", "duplicate_key")
        result[key] = value
    return result


def _too_deep(max_depth: int) -> Exception:
    return malformed(f"The JSON body nests deeper than {max_depth} levels.", "invalid_json")


def _check_nesting(body: bytes, max_depth: int) -> None:
    """Refuse deep nesting before the parser (recursive) runs: a few passes of C-speed byte work.

    Each pass removes the innermost empty pairs; after `max_depth` passes a body that nests
    no deeper has no bracket left. (Unbalanced brackets are broken JSON, refused either way.)
    """
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = _JSON_STRING.sub(b"", unescaped).translate(None, _NOT_BRACKETS)
    for _ in range(max_depth):
        brackets = _INNERMOST.sub(b"", brackets)
    if brackets:
        opened = brackets.count(b"[") + brackets.count(b"{")
        if opened * 2 != len(brackets):
            raise malformed("The body is not valid JSON.", "invalid_json")
        raise _too_deep(max_depth)


def _depth(value: Any) -> int:
    """Levels as the parser built them (a scalar inside an object is level 2); iterative, no recursion."""
    deepest, stack = 1, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, level + 1) for child in children)
    return deepest


def _check_strings(value: Any) -> None:
    """JSON escapes can spell lone surrogates (\\ud800): text no store or log can encode."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            item.encode("utf-8")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _decode_json(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    text = _text(body)
    _check_nesting(body, max_depth)
    try:
        value = json.loads(text, object_pairs_hook=_reject_duplicate_keys, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise malformed("The body is not valid JSON.", "invalid_json") from None
    if not isinstance(value, dict):
        raise malformed("The JSON body must be an object.", "invalid_json")
    if _depth(value) > max_depth:
        raise _too_deep(max_depth)
    if len(value) > MAX_FIELDS:
        raise malformed(f"The body has more than {MAX_FIELDS} fields.", "too_many_fields")
    try:
        _check_strings(value)
    except UnicodeEncodeError:
        raise malformed("The JSON body has a lone surrogate escape (not text).", "invalid_encoding") from None
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
    if body.count(b"&") >= MAX_FIELDS:  # counted before parsing: one '&' between two fields
        raise malformed(f"The form has more than {MAX_FIELDS} fields.", "too_many_fields")
    text = _text(body)
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), errors="strict")
    except (ValueError, UnicodeDecodeError) as exc:
        raise malformed("The form body is not valid URL encoding.", "invalid_form") from exc
    return _collect_form(pairs)


def _decode_multipart(body: bytes, params: dict[str, str]) -> dict[str, Any]:
    """Bounded before parsing: the part count, then each part's header block (relay.web.multipart)."""
    boundary = multipart.boundary_of(params)
    pairs = [(name, _text(value)) for name, value in multipart.split_parts(body, boundary, MAX_FIELDS)]
    return _collect_form(pairs)
