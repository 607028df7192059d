"""Hostile and broken input through the real handler: always a clear 4xx problem, never a 500."""

from __future__ import annotations

import json
import string
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local.stack import TABLE_NAMES, Stack
from tests.helpers import Invoker, Sandbox, future

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
