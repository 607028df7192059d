"""The handler in-process against DynamoDB Local, the Secrets Manager emulator and the sandbox providers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from local.stack import TABLE_NAMES, Stack
from tests.helpers import WEBSITE, Invoker, Sandbox, future, new_key, stored_record

EVENTS = Path(__file__).resolve().parents[2] / "events"


def _locks(stack: Stack) -> int:
    return int(
        stack.client("dynamodb").scan(TableName=TABLE_NAMES["IdempotencyTable"], Select="COUNT")["Count"]
    )


def test_iclosed_gets_exactly_the_contract_body(invoke: Invoker, sandboxes: dict[str, Sandbox]) -> None:
    start = future(days=40, hour=9, minute=15)
    answer = invoke(
        "POST",
        "/v1/reschedules",
        body={
            "provider": "iclosed",
            "eventCallId": 1002,
            "dateTime": start,
            "timeZone": "America/Chicago",
            "rescheduleReason": "Conflict",
            "notes": "Prefers mornings",
            "userId": 42,
        },
    )
    assert answer.status == 200, answer.body
    calls = sandboxes["iclosed"].calls()
    assert len(calls) == 1
    assert calls[0]["method"] == "PUT"
    assert calls[0]["path"] == "/v1/eventCalls/reschedule"
    assert calls[0]["headers"]["authorization"] == "Bearer iclosed-sandbox-token-0001"
    assert calls[0]["body"] == {
        "id": 1002,
        "dateTime": start,
        "timeZone": "America/Chicago",
        "rescheduleReason": "Conflict",
        "notes": "Prefers mornings",
        "userId": 42,
    }
    assert answer.body["provider_result"]["dateTime"] == start
    assert answer.body["replayed"] is False


def test_novacal_gets_exactly_the_contract_body(invoke: Invoker, sandboxes: dict[str, Sandbox]) -> None:
    booking = sandboxes["novacal"].bookings[0]
    answer = invoke(
        "POST",
        "/v1/reschedules",
        body={
            "provider": "novacal",
            "booking_id": booking,
            "start": future(days=41, hour=14) + "+01:00",
            "timezone": "Europe/Paris",
            "duration_minutes": 50,
            "time_format": 12,
            "form_field_answers": {"notes": "Second call"},
        },
    )
    assert answer.status == 200, answer.body
    (call,) = sandboxes["novacal"].calls()
    assert (call["method"], call["path"]) == ("PUT", f"/v1/events/{booking}")
    body = call["body"]
    assert body["start"].endswith("T13:00:00Z")
    assert body["end"].endswith("T13:50:00Z")
    assert body == {
        "start": body["start"],
        "end": body["end"],
        "timezone": "Europe/Paris",
        "time_format": 12,
        "form_field_answers": {"notes": "Second call"},
    }
    assert answer.body["end"].endswith("T14:50:00+01:00")


@pytest.mark.parametrize("name", ["zapier-json-iclosed", "website-form-novacal", "multipart-form-iclosed"])
def test_committed_events_for_each_content_type_reschedule(
    name: str, invoke: Invoker, sandboxes: dict[str, Sandbox]
) -> None:
    event = json.loads((EVENTS / f"{name}.json").read_text())
    event["headers"]["idempotency-key"] = new_key()  # a fresh key, so earlier runs are not replayed
    answer = invoke.invoke(event)
    assert answer.status == 200, answer.body
    provider = answer.body["provider"]
    assert len(sandboxes[provider].calls()) == 1


@pytest.mark.parametrize(
    ("name", "status", "field"),
    [
        ("invalid-unknown-field", 422, "status"),
        ("invalid-dst-gap", 422, "start"),
        ("invalid-booking-id", 422, "booking_id"),
        ("invalid-broken-json", 400, None),
        ("invalid-content-type", 415, None),
    ],
)
def test_committed_invalid_events_get_problem_json(
    name: str, status: int, field: str | None, invoke: Invoker, sandboxes: dict[str, Sandbox]
) -> None:
    answer = invoke.invoke(json.loads((EVENTS / f"{name}.json").read_text()))
    assert answer.status == status
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.body["status"] == status
    if field:
        assert field in [e["field"] for e in answer.body["errors"]]
    assert sandboxes["iclosed"].calls() == sandboxes["novacal"].calls() == []


def test_replay_returns_the_stored_answer_and_calls_nobody(
    invoke: Invoker, sandboxes: dict[str, Sandbox]
) -> None:
    body = {"provider": "iclosed", "id": 1003, "start": future(days=42), "timezone": "Asia/Tokyo"}
    key = new_key()
    first = invoke("POST", "/v1/reschedules", body=body, headers={"idempotency-key": key})
    second = invoke("POST", "/v1/reschedules", body=body, headers={"idempotency-key": key})
    assert first.status == second.status == 200
    assert "idempotent-replayed" not in first.headers
    assert second.headers["idempotent-replayed"] == "true"
    assert second.body == first.body | {"replayed": True}
    assert len(sandboxes["iclosed"].calls()) == 1


def test_without_a_key_the_same_command_is_replayed(invoke: Invoker, sandboxes: dict[str, Sandbox]) -> None:
    body = {"provider": "iclosed", "id": 1003, "start": future(days=43, minute=7), "timezone": "Asia/Tokyo"}
    first = invoke("POST", "/v1/reschedules", body=body)
    form = "&".join(f"{k}={v}" for k, v in body.items()).replace("/", "%2F")
    second = invoke("POST", "/v1/reschedules", body=form, content_type="application/x-www-form-urlencoded")
    assert second.status == 200
    assert second.body["reschedule_id"] == first.body["reschedule_id"]
    assert second.body["replayed"] is True
    assert len(sandboxes["iclosed"].calls()) == 1


def test_same_key_different_payload_is_422(invoke: Invoker, sandboxes: dict[str, Sandbox]) -> None:
    key = new_key()
    body = {"provider": "iclosed", "id": 1004, "start": future(days=44), "timezone": "UTC"}
    assert invoke("POST", "/v1/reschedules", body=body, headers={"idempotency-key": key}).status == 200
    other = invoke(
        "POST", "/v1/reschedules", body=body | {"start": future(days=45)}, headers={"idempotency-key": key}
    )
    assert other.status == 422
    assert other.body["code"] == "idempotency_key_reused"
    assert len(sandboxes["iclosed"].calls()) == 1


def test_keys_are_scoped_by_source(invoke: Invoker, sandboxes: dict[str, Sandbox]) -> None:
    key = new_key()
    booking = sandboxes["novacal"].bookings[1]
    body = {"provider": "novacal", "booking_id": booking, "start": future(days=46) + "Z"}
    zapier = invoke("POST", "/v1/reschedules", body=body, headers={"idempotency-key": key})
    website = invoke(
        "POST", "/v1/reschedules", body=body, headers={"idempotency-key": key}, key=WEBSITE.api_key
    )
    assert zapier.status == website.status == 200
    assert website.body["replayed"] is False
    assert len(sandboxes["novacal"].calls()) == 2


def test_failed_provider_call_leaves_no_lock_and_a_failure_record(
    invoke: Invoker, sandboxes: dict[str, Sandbox], stack: Stack
) -> None:
    body = {"provider": "iclosed", "id": 1005, "start": future(days=47), "timezone": "UTC"}
    key = new_key()
    locks_before = _locks(stack)
    sandboxes["iclosed"].fault(status=500, times=1)  # a 500 is not retried
    failed = invoke("POST", "/v1/reschedules", body=body, headers={"idempotency-key": key})
    assert failed.status == 502
    assert failed.body["code"] == "provider_error"
    assert _locks(stack) == locks_before
    record = stored_record(stack, failed.body["reschedule_id"])
    assert record["status"] == "failed"
    assert record["reason"] == "provider_error"
    assert record["provider_status"] == "500"
    # The caller's retry runs again (no stored answer for a failure) and succeeds.
    retried = invoke("POST", "/v1/reschedules", body=body, headers={"idempotency-key": key})
    assert retried.status == 200
    assert retried.body["replayed"] is False
    assert len(sandboxes["iclosed"].calls()) == 2


def test_unknown_booking_is_404(invoke: Invoker, sandboxes: dict[str, Sandbox]) -> None:
    answer = invoke(
        "POST",
        "/v1/reschedules",
        body={"provider": "iclosed", "id": 999999, "start": future(days=50), "timezone": "UTC"},
    )
    assert (answer.status, answer.body["code"]) == (404, "booking_not_found")
    assert len(sandboxes["iclosed"].calls()) == 1


def test_record_is_readable_by_its_source_only_and_history_is_ordered(
    invoke: Invoker, sandboxes: dict[str, Sandbox], relay_module: Any
) -> None:
    booking = sandboxes["novacal"].bookings[3]
    ids = []
    for day in (51, 52):
        answer = invoke(
            "POST",
            "/v1/reschedules",
            body={"provider": "novacal", "booking_id": booking, "start": future(days=day) + "Z"},
        )
        assert answer.status == 200
        ids.append(answer.body["reschedule_id"])
    mine = invoke("GET", f"/v1/reschedules/{ids[0]}")
    assert mine.status == 200
    assert mine.body["status"] == "succeeded"
    assert mine.body["booking_id"] == booking
    assert "source" not in mine.body
    assert invoke("GET", f"/v1/reschedules/{ids[0]}", key=WEBSITE.api_key).status == 404
    assert invoke("GET", "/v1/reschedules/not-an-id").status == 404
    history = relay_module.service._records.history("novacal", booking)
    assert [h["reschedule_id"] for h in history][-2:] == ids


def test_stored_records_hold_no_personal_data_or_tokens(invoke: Invoker, stack: Stack) -> None:
    answer = invoke(
        "POST",
        "/v1/reschedules",
        body={"provider": "iclosed", "id": 1002, "start": future(days=53), "timezone": "UTC"},
    )
    stored = json.dumps(stored_record(stack, answer.body["reschedule_id"]))
    for secret in ("sandbox-invitee", "@example.test", "555", "iclosed-sandbox-token", "sandbox-key-zapier"):
        assert secret not in stored
        assert secret not in json.dumps(answer.body)


@pytest.mark.parametrize(
    ("key", "body", "status", "code"),
    [
        (None, {}, 401, "missing_credentials"),
        ("sandbox-wrong", {}, 401, "invalid_api_key"),
        (WEBSITE.api_key, {"provider": "iclosed", "booking_id": "1001"}, 403, "provider_not_allowed"),
        (WEBSITE.api_key, {"provider": "novacal", "account": "other"}, 403, "account_not_allowed"),
    ],
)
def test_callers_are_authenticated_and_authorised(
    key: str | None,
    body: dict[str, Any],
    status: int,
    code: str,
    invoke: Invoker,
    sandboxes: dict[str, Sandbox],
) -> None:
    full = {
        "provider": "novacal",
        "booking_id": sandboxes["novacal"].bookings[0],
        "start": future(days=54) + "Z",
    }
    answer = invoke("POST", "/v1/reschedules", body=full | body, key=key)
    assert (answer.status, answer.body["code"]) == (status, code)
    assert sandboxes["iclosed"].calls() == sandboxes["novacal"].calls() == []


def test_oversized_and_base64_garbage_bodies(invoke: Invoker) -> None:
    big = invoke("POST", "/v1/reschedules", body="x" * (64 * 1024 + 1), content_type="application/json")
    assert big.status == 413
    event = json.loads((EVENTS / "website-form-novacal.json").read_text())
    event["body"] = "@@not base64@@"
    assert invoke.invoke(event).status == 400
