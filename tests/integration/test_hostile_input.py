"""Hostile and broken input through the real handler: always a clear 4xx problem, never a 500."""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import string
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from local.emulator import build_event
from local.stack import TABLE_NAMES, Stack
from relay.errors import MAX_ECHO
from tests.helpers import ZAPIER, Invoker, Sandbox, future, lambda_context, stored_record

FORM = "application/x-www-form-urlencoded"
JSON_TYPE = "application/json"
FIELDS = [
    "provider",
    "booking_id",
    "id",
    "start",
    "dateTime",
    "date",
    "time",
    "timezone",
    "end",
    "duration_minutes",
    "reason",
    "notes",
    "user_id",
    "time_format",
    "answers",
    "account",
    "extra",
]


def fuzz(examples: int) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Hypothesis settings for driving the handler: no deadline (it does real I/O), no example database."""
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
        database=None,
    )


def _assert_clear_answer(status: int, headers: dict[str, str], body: Any) -> None:
    assert status < 500 or status in (502, 503, 504), body
    if status >= 400:
        assert headers["content-type"] == "application/problem+json"
        assert body["status"] == status
        assert body["code"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


@fuzz(150)
@given(body=st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=12), json_values, max_size=8))
def test_any_json_object_gets_a_2xx_or_a_4xx_problem(invoke: Invoker, body: dict[str, Any]) -> None:
    answer = invoke("POST", "/v1/reschedules", body=json.dumps(body), content_type=JSON_TYPE)
    _assert_clear_answer(answer.status, answer.headers, answer.body)


@fuzz(150)
@given(
    pairs=st.lists(
        st.tuples(st.sampled_from(FIELDS) | st.text(max_size=12), st.text(max_size=30)), max_size=8
    )
)
def test_any_form_gets_a_2xx_or_a_4xx_problem(invoke: Invoker, pairs: list[tuple[str, str]]) -> None:
    answer = invoke("POST", "/v1/reschedules", body=urlencode(pairs), content_type=FORM)
    _assert_clear_answer(answer.status, answer.headers, answer.body)


@fuzz(100)
@given(
    parts=st.lists(
        st.tuples(st.sampled_from(FIELDS), st.text(alphabet=string.printable, max_size=30)), max_size=6
    ),
    boundary=st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=20),
    garble=st.booleans(),
)
def test_any_multipart_gets_a_2xx_or_a_4xx_problem(
    invoke: Invoker, parts: list[tuple[str, str]], boundary: str, garble: bool
) -> None:
    body = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{n}"\r\n\r\n{v}\r\n' for n, v in parts
    )
    body += "" if garble else f"--{boundary}--\r\n"
    answer = invoke(
        "POST", "/v1/reschedules", body=body, content_type=f"multipart/form-data; boundary={boundary}"
    )
    _assert_clear_answer(answer.status, answer.headers, answer.body)


@fuzz(100)
@given(
    raw=st.binary(max_size=200),
    content_type=st.sampled_from([JSON_TYPE, FORM, "multipart/form-data; boundary=x"]),
)
def test_any_bytes_get_a_2xx_or_a_4xx_problem(invoke: Invoker, raw: bytes, content_type: str) -> None:
    answer = invoke("POST", "/v1/reschedules", body=raw, content_type=content_type)
    _assert_clear_answer(answer.status, answer.headers, answer.body)


BASE = {"provider": "iclosed", "id": 1001, "timezone": "UTC"}


@pytest.mark.parametrize(
    ("body", "content_type", "status", "field"),
    [
        pytest.param({"notes": "x" * 5000}, JSON_TYPE, 422, "notes", id="oversized field"),
        pytest.param({"reason": "a\x00b"}, JSON_TYPE, 422, "reason", id="NUL in a field"),
        pytest.param({"reason": "a\x1b[31mred"}, JSON_TYPE, 422, "reason", id="terminal escape"),
        pytest.param({"answers": {"a": {"b": {"c": {"d": 1}}}}}, JSON_TYPE, 400, None, id="deeply nested"),
        pytest.param('{"id": 1001, "id": 1002}', JSON_TYPE, 400, None, id="duplicate keys"),
        pytest.param(b'{"notes": "\xff\xfe"}', JSON_TYPE, 400, None, id="invalid UTF-8"),
        pytest.param({"id": "../1001"}, JSON_TYPE, 422, "id", id="path escape dot-dot"),
        pytest.param({"id": "1001%2F..%2F"}, JSON_TYPE, 422, "id", id="path escape encoded slash"),
        pytest.param({"id": "1001?admin=1"}, JSON_TYPE, 422, "id", id="query injection"),
        pytest.param({"id": "1001#x"}, JSON_TYPE, 422, "id", id="fragment injection"),
        pytest.param({"id": 10**30}, JSON_TYPE, 422, "id", id="huge number"),
        pytest.param({"user_id": 10**30}, JSON_TYPE, 422, "user_id", id="huge user id"),
        pytest.param({"user_id": 1.5}, JSON_TYPE, 422, "user_id", id="float for integer"),
        pytest.param({"reason": ["a", "b"]}, JSON_TYPE, 422, "reason", id="list for string"),
        pytest.param({"reason": {"a": 1}}, JSON_TYPE, 422, "reason", id="object for string"),
        pytest.param({"reason": True}, JSON_TYPE, 422, "reason", id="boolean for string"),
        pytest.param({"id": None}, JSON_TYPE, 422, "id", id="null booking id"),
        pytest.param("[" * 5000 + "]" * 5000, JSON_TYPE, 400, None, id="pathological nesting"),
    ],
)
def test_hostile_bodies_get_clear_4xx(
    body: Any,
    content_type: str,
    status: int,
    field: str | None,
    invoke: Invoker,
    sandboxes: dict[str, Sandbox],
) -> None:
    if isinstance(body, dict):
        body = json.dumps(BASE | {"start": future(days=90)} | body)
    answer = invoke("POST", "/v1/reschedules", body=body, content_type=content_type)
    assert answer.status == status, answer.body
    assert answer.headers["content-type"] == "application/problem+json"
    if field:
        assert field in [e["field"] for e in answer.body["errors"]]
    assert sandboxes["iclosed"].calls() == []


def test_novacal_booking_id_cannot_escape_the_path(invoke: Invoker, sandboxes: dict[str, Sandbox]) -> None:
    for booking in ("../events", "3f6c1d2a-9b7e-4c4d-8a51-5a0d0c000001/../x", "%2e%2e%2f", "a?b#c"):
        answer = invoke(
            "POST",
            "/v1/reschedules",
            body={"provider": "novacal", "booking_id": booking, "start": future(days=91) + "Z"},
        )
        assert answer.status == 422
    assert sandboxes["novacal"].calls() == []


def test_every_refusal_of_a_known_caller_is_recorded_with_its_reason(invoke: Invoker, stack: Stack) -> None:
    for body, content_type, reason in [
        ('{"broken', JSON_TYPE, "invalid_json"),
        ("a=1", "text/csv", "unsupported_media_type"),
        (json.dumps(BASE | {"start": "2001-01-01T00:00:00Z"}), JSON_TYPE, "validation_failed"),
    ]:
        answer = invoke("POST", "/v1/reschedules", body=body, content_type=content_type)
        item = stack.client("dynamodb").get_item(
            TableName=TABLE_NAMES["ReschedulesTable"],
            Key={"reschedule_id": {"S": answer.body["reschedule_id"]}},
        )["Item"]
        assert item["reason"]["S"] == reason
        assert item["source"]["S"] == "zapier-demo"


def test_unauthenticated_requests_leave_no_record(invoke: Invoker) -> None:
    answer = invoke("POST", "/v1/reschedules", body="{}", content_type=JSON_TYPE, key="sandbox-not-a-key")
    assert answer.status == 401
    assert "reschedule_id" not in answer.body


# ---- Issue 23: no 500 on any input, no CPU before the relay knows what it parses, bounded echoes ----

# Refusing a hostile body may cost this much CPU (before: 27 s for 50 KB of ';' in a part header).
MAX_REFUSAL_CPU_SECONDS = 0.05
MAX_LOG_LINE = 2048
HISTORY = "/v1/bookings/iclosed/1001/reschedules"
MULTIPART_X = "multipart/form-data; boundary=x"


@pytest.fixture
def log_lines(relay_module: Any) -> Iterator[Callable[[], list[str]]]:
    """The handler's log lines during the test (the door's Logger writes to a stream it holds)."""
    buffer = io.StringIO()
    handlers = logging.getLogger(relay_module.logger.service).handlers
    previous = [handler.setStream(buffer) for handler in handlers]  # type: ignore[attr-defined]
    yield lambda: buffer.getvalue().splitlines()
    for handler, stream in zip(handlers, previous, strict=True):
        handler.setStream(stream)  # type: ignore[attr-defined]


def _cpu(call: Callable[[], Any]) -> tuple[Any, float]:
    """CPU seconds of this thread only: the stack's pollers and servers share the process."""
    started = time.thread_time()
    result = call()
    return result, time.thread_time() - started


def _multipart_part(header_tail: str) -> str:
    return f'--x\r\nContent-Disposition: form-data; name="a"{header_tail}\r\n\r\nv\r\n--x--\r\n'


HOSTILE_BODIES = [
    pytest.param('{"a":' + "[" * 600 + "]" * 600 + "}", JSON_TYPE, id="1.2 KB of nested arrays"),
    pytest.param('{"a":' * 600 + "1" + "}" * 600, JSON_TYPE, id="nested objects"),
    pytest.param('{"a":"' + '\\"' * 20000 + '"}', JSON_TYPE, id="escaped quotes"),
    pytest.param(_multipart_part(";" * 50_000), MULTIPART_X, id="50 KB of semicolons in a part header"),
    pytest.param(_multipart_part(" " + "(" * 20_000), MULTIPART_X, id="nested comments in a part header"),
    pytest.param(
        _multipart_part("".join(f"\r\nX-H{i}: v" for i in range(5000))), MULTIPART_X, id="5000 part headers"
    ),
    pytest.param(
        "".join(f'--x\r\nContent-Disposition: form-data; name="f{i}"\r\n\r\nv\r\n' for i in range(1100))
        + "--x--\r\n",
        MULTIPART_X,
        id="1100 parts",
    ),
    pytest.param("&".join(f"a{i}=1" for i in range(7000)), FORM, id="7000 form fields"),
    pytest.param("{}", "multipart/form-data; boundary=" + "b" * 60_000, id="60 KB Content-Type"),
]


@pytest.mark.parametrize("with_key", [False, True], ids=["without credentials", "with an API key"])
@pytest.mark.parametrize(("body", "content_type"), HOSTILE_BODIES)
def test_hostile_bodies_are_refused_cheaply_with_a_short_log_line(
    body: str, content_type: str, with_key: bool, invoke: Invoker, log_lines: Callable[[], list[str]]
) -> None:
    key = ZAPIER.api_key if with_key else None
    answer, cpu = _cpu(
        lambda: invoke("POST", "/v1/reschedules", body=body, content_type=content_type, key=key)
    )
    _assert_clear_answer(answer.status, answer.headers, answer.body)
    assert 400 <= answer.status < 500, answer.body
    assert cpu < MAX_REFUSAL_CPU_SECONDS, f"{cpu * 1000:.0f} ms of CPU before the refusal"
    assert max(len(line) for line in log_lines()) < MAX_LOG_LINE


@pytest.mark.parametrize(
    "limit", ["\u00b2", "\u0665", "1e2", "-1", "0x10", " 5", "5 ", "1" * 40, "\x00", "0", "101"]
)
def test_a_history_limit_that_is_not_ascii_digits_is_a_422_naming_it(invoke: Invoker, limit: str) -> None:
    answer = invoke("GET", f"{HISTORY}?{urlencode({'limit': limit})}")
    assert answer.status == 422, answer.body
    assert [e["field"] for e in answer.body["errors"]] == ["limit"]


def _cursor(plain: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(plain).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param("%%%", id="not base64"),
        pytest.param("A" * 100_000, id="100 KB"),
        pytest.param(_cursor([1, 2]), id="a list"),
        pytest.param(
            _cursor({"reschedule_id": "x" * 3000, "booking_key": "iclosed#1001", "attempted_at": "y"}),
            id="huge key",
        ),
        pytest.param(
            _cursor({"reschedule_id": "\ud800", "booking_key": "iclosed#1001", "attempted_at": "y"}),
            id="lone surrogate",
        ),
        pytest.param(
            _cursor({"reschedule_id": 1, "booking_key": "iclosed#1001", "attempted_at": "y"}), id="a number"
        ),
        pytest.param(
            _cursor({"reschedule_id": "a", "booking_key": "iclosed#1002", "attempted_at": "y"}),
            id="another booking",
        ),
    ],
)
def test_a_forged_or_garbage_cursor_is_a_422_naming_it(invoke: Invoker, cursor: str) -> None:
    answer = invoke("GET", f"{HISTORY}?{urlencode({'cursor': cursor})}")
    assert answer.status == 422, answer.body
    assert [e["field"] for e in answer.body["errors"]] == ["cursor"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param('{"provider": "iclosed", "id": 1001, "reason": "\\ud800"}', id="lone surrogate value"),
        pytest.param('{"provider": "iclosed", "id": 1001, "\\udc00": "x"}', id="lone surrogate key"),
        pytest.param(
            '{"provider": "iclosed", "id": 1001, "answers": {"\\ud83d": "x"}}', id="half a pair in answers"
        ),
    ],
)
def test_lone_surrogates_are_a_400(invoke: Invoker, body: str) -> None:
    answer = invoke("POST", "/v1/reschedules", body=body, content_type=JSON_TYPE)
    assert (answer.status, answer.body["code"]) == (400, "invalid_encoding"), answer.body


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param(
            '{"provider": "iclosed", "id": 1001, "a\\u0000b": "x"}', JSON_TYPE, id="NUL in a JSON name"
        ),
        pytest.param("provider=iclosed&id=1001&a%00b=x", FORM, id="NUL in a form name"),
        pytest.param("provider=iclosed&id=1001&reason=a%00b", FORM, id="NUL in a form value"),
    ],
)
def test_nul_bytes_are_a_422_and_the_refusal_is_stored(
    invoke: Invoker, stack: Stack, body: str, content_type: str
) -> None:
    answer = invoke("POST", "/v1/reschedules", body=body, content_type=content_type)
    assert answer.status == 422, answer.body
    assert stored_record(stack, answer.body["reschedule_id"])["reason"] == "validation_failed"


@pytest.mark.parametrize(
    ("headers", "key", "status"),
    [
        pytest.param({"x-junk": "a" * 60_000}, None, 401, id="a 60 KB header"),
        pytest.param({}, "k" * 60_000, 401, id="a 60 KB API key"),
        pytest.param({"idempotency-key": "k" * 60_000}, ZAPIER.api_key, 422, id="a 60 KB idempotency key"),
        pytest.param({"idempotency-key": "a\ud800"}, ZAPIER.api_key, 422, id="a surrogate in the key"),
        pytest.param(
            {
                "webhook-id": "m" * 60_000,
                "webhook-timestamp": "9" * 60_000,
                "webhook-signature": "v1," + "s" * 60_000,
            },
            None,
            401,
            id="60 KB signature headers",
        ),
        pytest.param({"prefer": "respond-async; " * 4000}, ZAPIER.api_key, 422, id="a 60 KB Prefer"),
    ],
)
def test_huge_headers_and_keys_are_a_4xx(
    invoke: Invoker, headers: dict[str, str], key: str | None, status: int, log_lines: Callable[[], list[str]]
) -> None:
    body = json.dumps({"provider": "iclosed", "id": 1001, "start": "2001-01-01T00:00:00Z"})
    answer = invoke("POST", "/v1/reschedules", body=body, content_type=JSON_TYPE, headers=headers, key=key)
    assert answer.status == status, answer.body
    assert answer.headers["content-type"] == "application/problem+json"
    assert max(len(line) for line in log_lines()) < MAX_LOG_LINE


# Two fit in one body under the 64 KiB limit (a body over it is a 413 before anything else).
GIANT = "k" * 30_000


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param(
            json.dumps({"provider": "iclosed", "id": 1001, GIANT: 1}), JSON_TYPE, id="unknown JSON field"
        ),
        pytest.param(
            f'{{"provider": "iclosed", "id": 1001, "{GIANT}": 1, "{GIANT}": 2}}',
            JSON_TYPE,
            id="JSON key twice",
        ),
        pytest.param(f"provider=iclosed&id=1001&{GIANT}=1&{GIANT}=2", FORM, id="form field twice"),
        pytest.param(
            json.dumps({"provider": "iclosed", "id": 1001, "answers": {GIANT: "x"}}),
            JSON_TYPE,
            id="answers key",
        ),
        pytest.param(json.dumps({"provider": GIANT, "id": 1001}), JSON_TYPE, id="provider value"),
        pytest.param(
            f'--x\r\nContent-Disposition: form-data; name="{GIANT[:900]}"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\nv\r\n--x--\r\n",
            MULTIPART_X,
            id="multipart part name",
        ),
    ],
)
def test_no_caller_value_longer_than_64_characters_is_echoed_or_stored(
    invoke: Invoker, stack: Stack, log_lines: Callable[[], list[str]], body: str, content_type: str
) -> None:
    answer = invoke("POST", "/v1/reschedules", body=body, content_type=content_type)
    assert 400 <= answer.status < 500, answer.body
    assert _longest_k_run(json.dumps(answer.body)) <= MAX_ECHO
    if "reschedule_id" in answer.body:
        assert _longest_k_run(json.dumps(stored_record(stack, answer.body["reschedule_id"]))) <= MAX_ECHO
    assert all(_longest_k_run(line) <= MAX_ECHO for line in log_lines())


def _longest_k_run(text: str) -> int:
    return max((len(run) for run in re.findall("k+", text)), default=0)


def test_a_history_of_an_unknown_provider_echoes_at_most_64_characters(invoke: Invoker) -> None:
    answer = invoke("GET", f"/v1/bookings/{'k' * 2000}/1001/reschedules")
    assert answer.status == 404
    assert _longest_k_run(json.dumps(answer.body)) <= MAX_ECHO


def test_problem_types_point_at_the_docs(invoke: Invoker, relay_module: Any) -> None:
    answer = invoke("POST", "/v1/reschedules", body="{", content_type=JSON_TYPE)
    assert answer.body["type"] == f"{relay_module.settings.problem_docs_url}#invalid_json"


# ---- The HTTP door, property-based: any request gets a 2xx or an RFC 9457 4xx, never a 5xx ----

DOOR_EXAMPLES = 150
# Per request through the real handler and DynamoDB Local; generous for a shared machine.
DOOR_DEADLINE = timedelta(seconds=5)

# Text a real HTTP request can carry (no lone surrogates: headers and URLs are bytes on the wire).
wire_text = st.text(st.characters(codec="utf-8"), max_size=40)
segments = st.sampled_from(
    ["1001", "iclosed", "novacal", "..", "%00", "a%2Fb", "\u00b2", "x" * 300]
) | st.text(st.characters(codec="utf-8", exclude_characters="/?#"), min_size=1, max_size=20)
paths = st.one_of(
    st.just("/v1/reschedules"),
    st.builds("/v1/reschedules/{}".format, segments),
    st.builds("/v1/bookings/{}/{}/reschedules".format, segments, segments),
    st.builds("/{}".format, wire_text),
)
queries = st.dictionaries(
    st.sampled_from(["limit", "cursor"]) | wire_text,
    st.sampled_from(["\u00b2", "\u0665", "0", "100", "101", "-1", "A" * 2000]) | wire_text,
    max_size=3,
)
content_types = st.sampled_from(
    [JSON_TYPE, FORM, "multipart/form-data; boundary=x", "multipart/form-data", "text/plain", "a" * 500]
) | st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
door_headers = st.fixed_dictionaries(
    {},
    optional={
        "authorization": st.sampled_from([f"Bearer {ZAPIER.api_key}", "Bearer sandbox-not-a-key", "Basic x"])
        | wire_text,
        "content-type": content_types,
        "idempotency-key": wire_text,
        "prefer": st.sampled_from(["respond-async", "wait=1"]) | wire_text,
        "origin": wire_text,
        "webhook-id": wire_text,
        "webhook-timestamp": st.integers().map(str) | wire_text,
        "webhook-signature": st.builds("v1,{}".format, wire_text),
    },
)


def _nested(depth: int, kind: str) -> str:
    return '{"a":' + ("[" * depth + "]" * depth if kind == "[" else '{"a":' * depth + "1" + "}" * depth) + "}"


door_bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(json.dumps),
    st.dictionaries(st.sampled_from(FIELDS) | wire_text, json_values, max_size=6).map(json.dumps),
    st.builds(
        _nested, st.sampled_from([3, 5, 600, 1500]) | st.integers(1, 2000), st.sampled_from(["[", "{"])
    ),
    st.lists(st.tuples(st.sampled_from(FIELDS) | wire_text, wire_text), max_size=6).map(urlencode),
    st.lists(st.tuples(wire_text, wire_text), max_size=4).map(
        lambda parts: (
            "".join(f"--x\r\nContent-Disposition: form-data; {h}\r\n\r\n{v}\r\n" for h, v in parts)
            + "--x--\r\n"
        )
    ),
)


Request = tuple[str, str, dict[str, str], dict[str, str], str | bytes]


@st.composite
def door_requests(draw: st.DrawFn) -> Request:
    """Half are the webhook's POST with a body type it parses (where the parsers are); the rest anything."""
    headers = draw(door_headers)
    if draw(st.booleans()):
        headers["content-type"] = draw(st.sampled_from([JSON_TYPE, FORM, "multipart/form-data; boundary=x"]))
        return "POST", "/v1/reschedules", draw(queries), headers, draw(door_bodies)
    method = draw(st.sampled_from(["GET", "POST", "DELETE", "OPTIONS", "PUT", "PATCH"]))
    return method, draw(paths), draw(queries), headers, draw(door_bodies)


# The findings of issue 23, always tried (each was a 500 or seconds of CPU before its fix).
DOOR_FINDINGS: list[Request] = [
    ("POST", "/v1/reschedules", {}, {"content-type": JSON_TYPE}, _nested(600, "[")),
    (
        "POST",
        "/v1/reschedules",
        {},
        {"content-type": JSON_TYPE, "authorization": f"Bearer {ZAPIER.api_key}"},
        _nested(600, "{"),
    ),
    ("GET", HISTORY, {"limit": "\u00b2"}, {"authorization": f"Bearer {ZAPIER.api_key}"}, b""),
    ("POST", "/v1/reschedules", {}, {"content-type": MULTIPART_X}, _multipart_part(" " + "(" * 20_000)),
]


@settings(
    max_examples=DOOR_EXAMPLES,
    deadline=DOOR_DEADLINE,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
@given(request=door_requests())
@example(request=DOOR_FINDINGS[0])
@example(request=DOOR_FINDINGS[1])
@example(request=DOOR_FINDINGS[2])
@example(request=DOOR_FINDINGS[3])
def test_any_request_at_the_http_door_gets_a_2xx_or_an_rfc9457_4xx(
    relay_module: Any, request: Request
) -> None:
    method, path, query, headers, body = request
    event = build_event(
        method=method,
        raw_path=path,
        raw_query=urlencode(query),
        headers=list(headers.items()),
        body=body.encode() if isinstance(body, str) else body,
        route_key=f"{method} {path}",
    )
    result = relay_module.lambda_handler(event, lambda_context())
    status = result["statusCode"]
    assert 200 <= status < 300 or 400 <= status < 500, result
    if status >= 400:
        assert result["headers"]["Content-Type"] == "application/problem+json"
        problem = json.loads(result["body"])
        assert problem["status"] == status
        assert problem["title"]
        assert problem["type"].endswith("#" + problem["code"])
