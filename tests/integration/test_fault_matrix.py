"""The fault matrix: each row a provider fault, driven through the sandbox's fault switches, asserting
the answer, Retry-After, the number of provider calls and the stored record (docs/failures.md, whose
table is checked against this matrix below)."""

from __future__ import annotations

from typing import Any

import pytest

from local.stack import Stack
from tests.doc_checks import page, tables
from tests.helpers import Invoker, Sandbox, future, new_key, stored_record

# (fault switched on at the sandbox, expected status, code, Retry-After header, provider calls)
MATRIX = [
    pytest.param({"status": 503, "times": 2}, 200, None, None, 3, id="503 twice, then success"),
    pytest.param(
        {"drop_connection": True, "times": 1}, 200, None, None, 2, id="dropped connection, then success"
    ),
    pytest.param({"delay_ms": 2500, "times": 1}, 200, None, None, 2, id="timeout, then success"),
    pytest.param({"status": 429, "retry_after": 1, "times": 1}, 200, None, None, 2, id="429 then success"),
    pytest.param({"status": 503, "times": 5}, 503, "provider_unavailable", "1", 3, id="503 throughout"),
    pytest.param(
        {"status": 502, "retry_after": 2, "times": 5},
        503,
        "provider_unavailable",
        "2",
        3,
        id="502 throughout with Retry-After",
    ),
    pytest.param(
        {"drop_connection": True, "times": 5}, 503, "provider_unavailable", "1", 3, id="unreachable"
    ),
    pytest.param({"delay_ms": 2500, "times": 5}, 504, "provider_timeout", "1", 3, id="timeout throughout"),
    pytest.param(
        {"status": 429, "retry_after": 60, "times": 5},
        429,
        "provider_rate_limited",
        "60",
        1,
        id="429 longer than the deadline",
    ),
    pytest.param({"status": 500, "times": 5}, 502, "provider_error", None, 1, id="500 is not retried"),
    pytest.param({"status": 401, "times": 1}, 200, None, None, 2, id="401 once: token re-read, success"),
    pytest.param({"status": 403, "times": 5}, 502, "provider_auth_failed", None, 2, id="403 twice"),
    pytest.param({"status": 404, "times": 1}, 404, "booking_not_found", None, 1, id="404"),
    pytest.param({"status": 422, "times": 1}, 422, "provider_rejected", None, 1, id="422"),
]


def test_the_failures_page_gives_each_refusal_of_the_matrix() -> None:
    # Each code this matrix asserts appears in docs/failures.md's answer column with the same status.
    (rows,) = [rows for rows in tables(page("failures.md")) if rows and "answer" in rows[0]]
    answers = " ".join(row["answer"] for row in rows)
    expected = {(param.values[1], param.values[2]) for param in MATRIX if param.values[2] is not None}
    assert expected
    missing = sorted((status, code) for status, code in expected if f"{status} `{code}`" not in answers)
    assert missing == [], "docs/failures.md does not say these answers"


@pytest.mark.parametrize(("fault", "status", "code", "retry_after", "calls"), MATRIX)
def test_fault_matrix(
    fault: dict[str, Any],
    status: int,
    code: str | None,
    retry_after: str | None,
    calls: int,
    invoke: Invoker,
    sandboxes: dict[str, Sandbox],
    stack: Stack,
) -> None:
    # Given the provider misbehaves this way
    sandboxes["novacal"].fault(**fault)
    # When a reschedule arrives
    answer = invoke(
        "POST",
        "/v1/reschedules",
        headers={"idempotency-key": new_key()},
        body={
            "provider": "novacal",
            "booking_id": sandboxes["novacal"].bookings[1],
            "start": future(days=70) + "Z",
        },
    )
    # Then the answer, its Retry-After, the calls made and the record are as documented
    assert answer.status == status, answer.body
    assert answer.body.get("code") == code
    assert answer.headers.get("retry-after") == retry_after
    if code == "provider_rejected":  # the provider's own field errors are passed on
        assert answer.body["errors"]
    assert len(sandboxes["novacal"].calls()) == calls
    record = stored_record(stack, answer.body["reschedule_id"])
    assert record["status"] == ("succeeded" if status == 200 else "failed")
    assert record.get("reason") == code
