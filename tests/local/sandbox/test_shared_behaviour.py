"""What every sandbox shares: seeds, the call log, connection stats, body framing, concurrency."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import httpx

from local.sandbox import PROVIDERS, SandboxProvider, start_sandbox
from local.sandbox.bookings import ACUITY_IDS, CALCOM_UIDS
from tests.local.sandbox.helpers import (
    HTTP,
    SUCCESS_STATUS,
    TIMEOUT,
    TOKENS,
    arm_fault,
    auth,
    calls,
    item_id,
    send_valid,
    snapshot,
    stats,
    valid_call,
)

# Where each provider's booking JSON keeps its start (Acuity's carries an offset, not UTC).
START_FIELDS = {"iclosed": "dateTimeUTC", "novacal": "start", "calcom": "start", "acuity": "datetime"}


def idempotent_call(provider: SandboxProvider) -> httpx.Response:
    """A call that succeeds however many run at once (a Cal.com move would find its uid already moved)."""
    if provider.name != "calcom":
        return send_valid(provider)
    return HTTP.get(f"{provider.url}/v2/bookings/{provider.bookings[0]}", headers=auth(provider))


def test_seeded_bookings_are_exposed(sandbox: SandboxProvider) -> None:
    assert len(sandbox.bookings) == 5
    assert all(isinstance(booking_id, str) for booking_id in sandbox.bookings)
    expected = {
        "iclosed": ["1001", "1002", "1003", "1004", "1005"],
        "calcom": list(CALCOM_UIDS),
        "acuity": [str(appointment_id) for appointment_id in ACUITY_IDS],
    }
    if sandbox.name in expected:
        assert sandbox.bookings == expected[sandbox.name]
    else:
        assert all(re.fullmatch(r"[0-9a-f-]{36}", booking_id) for booking_id in sandbox.bookings)
    listed = [item_id(sandbox, item) for item in snapshot(sandbox)]
    # The snapshot starts with the listed bookings; Cal.com and Acuity add their refusal seeds after them.
    assert listed[:5] == sandbox.bookings


def test_seeded_bookings_start_far_in_the_future() -> None:
    # Fresh servers, because other tests move the module's bookings around.
    for name in PROVIDERS:
        with start_sandbox(name, token=TOKENS[name]) as fresh:
            starts = [datetime.fromisoformat(item[START_FIELDS[name]]) for item in snapshot(fresh)]
        assert all(start.year >= 2030 for start in starts), starts


def test_url_token_and_name_are_reported(sandbox: SandboxProvider) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", sandbox.url)
    assert sandbox.token == TOKENS[sandbox.name]
    assert sandbox.name in PROVIDERS


def test_call_log_records_provider_requests_oldest_first(sandbox: SandboxProvider) -> None:
    # Given one valid call, one with a non-JSON body and one with no body at all
    method, path, body = valid_call(sandbox)
    headers = auth(sandbox) | {"X-Trace-Id": "trace-1"}
    first_answer = HTTP.request(method, f"{sandbox.url}{path}", json=body, headers=headers)
    assert first_answer.status_code == SUCCESS_STATUS[sandbox.name]
    text_headers = auth(sandbox) | {"Content-Type": "text/plain"}
    HTTP.request(method, f"{sandbox.url}{path}", content="not json", headers=text_headers)
    HTTP.get(f"{sandbox.url}/v1/nothing-here?probe=1")
    HTTP.get(f"{sandbox.url}/_sandbox/stats")  # control requests are not logged

    # When the log is read
    logged = calls(sandbox)

    # Then it holds exactly those three, in order, with lower-cased headers and parsed bodies
    assert [(call["method"], call["path"]) for call in logged] == [
        (method, path),
        (method, path),
        ("GET", "/v1/nothing-here?probe=1"),
    ]
    first = logged[0]
    assert set(first) == {"method", "path", "headers", "body", "at"}  # at: arrival time (pacing tests)
    assert all(name == name.lower() for name in first["headers"])
    assert first["headers"]["authorization"] == auth(sandbox)["Authorization"]
    assert first["headers"]["content-type"] == "application/json"
    assert first["headers"]["x-trace-id"] == "trace-1"
    assert first["body"] == body
    assert logged[1]["body"] == "not json"
    assert logged[2]["body"] is None


def test_call_log_can_be_cleared(sandbox: SandboxProvider) -> None:
    send_valid(sandbox)
    assert len(calls(sandbox)) == 1
    assert HTTP.delete(f"{sandbox.url}/_sandbox/calls").status_code == 204
    assert calls(sandbox) == []


def test_call_log_includes_rejected_and_faulted_calls(sandbox: SandboxProvider) -> None:
    arm_fault(sandbox, status=500)
    assert send_valid(sandbox).status_code == 500
    method, path, body = valid_call(sandbox)
    headers = auth(sandbox) | {"Authorization": "Bearer nope"}
    rejected = HTTP.request(method, f"{sandbox.url}{path}", json=body, headers=headers)
    assert rejected.status_code == 401
    logged = calls(sandbox)
    assert len(logged) == 2
    assert logged[1]["headers"]["authorization"] == "Bearer nope"


def test_keep_alive_reuses_one_connection(sandbox: SandboxProvider) -> None:
    with httpx.Client(base_url=sandbox.url, timeout=TIMEOUT) as client:
        responses = [send_valid(sandbox, client) for _ in range(5)]
    assert [response.status_code for response in responses] == [SUCCESS_STATUS[sandbox.name]] * 5
    assert all("close" not in response.headers.get("connection", "") for response in responses)
    assert stats(sandbox) | {"accepted": 0} == {"connections": 1, "requests": 5, "accepted": 0}


def test_separate_clients_count_separate_connections(sandbox: SandboxProvider) -> None:
    for _ in range(3):
        with httpx.Client(base_url=sandbox.url, timeout=TIMEOUT) as client:
            assert send_valid(sandbox, client).status_code == SUCCESS_STATUS[sandbox.name]
    counted = stats(sandbox)
    assert counted["connections"] == 3
    assert counted["requests"] == 3
    assert counted["accepted"] >= 3


def test_stats_reset_counts_a_reused_connection_again(sandbox: SandboxProvider) -> None:
    with httpx.Client(base_url=sandbox.url, timeout=TIMEOUT) as client:
        send_valid(sandbox, client)
        assert HTTP.delete(f"{sandbox.url}/_sandbox/stats").status_code == 204
        assert stats(sandbox)["requests"] == 0
        send_valid(sandbox, client)
    assert stats(sandbox)["connections"] == 1
    assert stats(sandbox)["requests"] == 1


def test_chunked_request_body_is_read(sandbox: SandboxProvider) -> None:
    method, path, body = valid_call(sandbox)
    encoded = json.dumps(body).encode()
    chunks = iter([encoded[:10], encoded[10:]])
    headers = auth(sandbox) | {"Content-Type": "application/json"}
    with httpx.Client(base_url=sandbox.url, timeout=TIMEOUT) as client:
        response = client.request(method, path, content=chunks, headers=headers)
        assert response.status_code == SUCCESS_STATUS[sandbox.name]
        # the connection stayed in step
        assert send_valid(sandbox, client).status_code == SUCCESS_STATUS[sandbox.name]
    assert calls(sandbox)[0]["body"] == body


def test_concurrent_requests_are_all_served_and_logged(sandbox: SandboxProvider) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda _: idempotent_call(sandbox).status_code, range(40)))
    assert statuses == [200 if sandbox.name == "calcom" else SUCCESS_STATUS[sandbox.name]] * 40
    assert len(calls(sandbox)) == 40
    assert stats(sandbox)["requests"] == 40


def test_unknown_control_route_is_404(sandbox: SandboxProvider) -> None:
    assert HTTP.get(f"{sandbox.url}/_sandbox/nothing").status_code == 404
    assert HTTP.put(f"{sandbox.url}/_sandbox/calls").status_code == 404
    assert calls(sandbox) == []
