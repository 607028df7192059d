"""Issue 10: answers that are true (A -> B -> A moves back), a booking's history, and dry runs."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from bench.budgets import MAX_DYNAMODB_CALLS_NEW
from bench.counting import count_sends
from local.stack import TABLE_NAMES, Stack
from tests.helpers import WEBSITE, Invoker, Sandbox, future, new_key, stored_record

# The one extra read a content-keyed replay may make (is it still the booking's last move?).
CONTENT_KEYED_REPLAY_DYNAMODB_CALLS = 2


@pytest.fixture
def iclosed_booking(sandboxes: dict[str, Sandbox]) -> str:
    return random.choice(sandboxes["iclosed"].bookings)


def _start() -> str:
    """A start no other test (or earlier run against the same tables) has used: content keys stay apart."""
    return future(days=random.randint(100, 700), hour=random.randint(8, 17), minute=random.randint(0, 59))


def _move(invoke: Invoker, booking: str, start: str, key: str | None = None, **extra: Any) -> Any:
    headers = {"idempotency-key": key} if key else None
    body = {"provider": "iclosed", "id": int(booking), "start": start, "timezone": "UTC", **extra}
    return invoke("POST", "/v1/reschedules", body=body, headers=headers)


def _locks(stack: Stack) -> int:
    return int(
        stack.client("dynamodb").scan(TableName=TABLE_NAMES["IdempotencyTable"], Select="COUNT")["Count"]
    )


@pytest.fixture
def dynamodb(relay_module: Any) -> Any:
    from relay.dal import clients  # noqa: PLC0415 - importable once relay_module set the environment

    return clients.dynamodb()


# -- 1. A "succeeded" answer is true ---------------------------------------------------------------


def test_a_b_a_without_keys_moves_the_booking_back(
    invoke: Invoker, sandboxes: dict[str, Sandbox], iclosed_booking: str
) -> None:
    a, b = _start(), _start()
    first = _move(invoke, iclosed_booking, a)
    _move(invoke, iclosed_booking, b)
    # When the invitee changes their mind back to A within the idempotency window
    back = _move(invoke, iclosed_booking, a)
    # Then the booking is moved back (a third provider call) and the answer is fresh
    assert back.status == 200, back.body
    assert (back.body["status"], back.body["replayed"]) == ("succeeded", False)
    assert "idempotent-replayed" not in back.headers
    assert back.body["reschedule_id"] != first.body["reschedule_id"]
    calls = sandboxes["iclosed"].calls()
    assert [c["body"]["dateTime"] for c in calls] == [a, b, a]
    # And a double click on that last request is a replay of it
    again = _move(invoke, iclosed_booking, a)
    assert (again.body["replayed"], again.body["reschedule_id"]) == (True, back.body["reschedule_id"])
    assert len(sandboxes["iclosed"].calls()) == 3


def test_a_b_a_with_keys_moves_back_and_a_key_keeps_its_meaning(
    invoke: Invoker, sandboxes: dict[str, Sandbox], iclosed_booking: str
) -> None:
    a, b = _start(), _start()
    keys = [new_key() for _ in range(3)]
    first = _move(invoke, iclosed_booking, a, keys[0])
    _move(invoke, iclosed_booking, b, keys[1])
    back = _move(invoke, iclosed_booking, a, keys[2])
    assert (back.status, back.body["replayed"]) == (200, False)
    assert [c["body"]["dateTime"] for c in sandboxes["iclosed"].calls()] == [a, b, a]
    # An explicit key is a replay of its own request, whatever happened to the booking since
    repeat = _move(invoke, iclosed_booking, a, keys[0])
    assert (repeat.body["replayed"], repeat.body["reschedule_id"]) == (True, first.body["reschedule_id"])
    assert len(sandboxes["iclosed"].calls()) == 3


def test_a_double_click_calls_the_provider_once(
    invoke: Invoker, sandboxes: dict[str, Sandbox], iclosed_booking: str
) -> None:
    start = _start()
    first, second = _move(invoke, iclosed_booking, start), _move(invoke, iclosed_booking, start)
    assert (first.body["replayed"], second.body["replayed"]) == (False, True)
    assert second.headers["idempotent-replayed"] == "true"
    assert second.body["reschedule_id"] == first.body["reschedule_id"]
    assert len(sandboxes["iclosed"].calls()) == 1


def test_content_keyed_costs_two_round_trips_new_and_one_extra_read_to_replay(
    invoke: Invoker, dynamodb: Any, iclosed_booking: str
) -> None:
    start = _start()
    with count_sends(dynamodb) as new:
        assert _move(invoke, iclosed_booking, start).body["replayed"] is False
    assert len(new) <= MAX_DYNAMODB_CALLS_NEW, new.operations
    with count_sends(dynamodb) as replay:
        assert _move(invoke, iclosed_booking, start).body["replayed"] is True
    assert len(replay) == CONTENT_KEYED_REPLAY_DYNAMODB_CALLS, replay.operations
    assert replay.operations == ["PutItem", "GetItem"]  # the lock attempt, then the last move


def test_the_answer_and_the_record_use_one_vocabulary(invoke: Invoker, iclosed_booking: str) -> None:
    start = _start()
    answer = _move(invoke, iclosed_booking, start)
    assert answer.body["status"] == "succeeded"
    record = invoke("GET", f"/v1/reschedules/{answer.body['reschedule_id']}").body
    assert record["status"] == "succeeded"
    assert record["start"] == answer.body["start"] == start + "+00:00"
    assert record["requested_start"] == record["start"]  # the deprecated alias, for one version


# -- 2. A booking's history -------------------------------------------------------------------------


def _history(invoke: Invoker, provider: str, booking: str, query: str = "", **kwargs: Any) -> Any:
    return invoke("GET", f"/v1/bookings/{provider}/{booking}/reschedules{query}", **kwargs)


def test_history_lists_this_sources_attempts_newest_first_a_page_at_a_time(
    invoke: Invoker, sandboxes: dict[str, Sandbox]
) -> None:
    booking = sandboxes["novacal"].bookings[4]
    mine = []
    for _ in range(3):
        body = {"provider": "novacal", "booking_id": booking, "start": _start() + "Z"}
        mine.append(invoke("POST", "/v1/reschedules", body=body).body["reschedule_id"])
    other = invoke(
        "POST",
        "/v1/reschedules",
        body={"provider": "novacal", "booking_id": booking, "start": _start() + "Z"},
        key=WEBSITE.api_key,
    )
    assert other.status == 200
    first = _history(invoke, "novacal", booking, "?limit=2")
    assert first.status == 200, first.body
    assert [r["reschedule_id"] for r in first.body["reschedules"]] == mine[::-1][:2]
    second = _history(invoke, "NovaCal", booking.upper(), f"?limit=2&cursor={first.body['next_cursor']}")
    seen = [r["reschedule_id"] for r in first.body["reschedules"] + second.body["reschedules"]]
    assert seen[:3] == mine[::-1]
    assert other.body["reschedule_id"] not in seen
    assert all(r["status"] == "succeeded" for r in first.body["reschedules"])


def test_replays_are_not_attempts(invoke: Invoker, iclosed_booking: str) -> None:
    start = _start()
    before = _history(invoke, "iclosed", iclosed_booking, "?limit=100").body["reschedules"]
    first = _move(invoke, iclosed_booking, start)
    assert _move(invoke, iclosed_booking, start).body["replayed"] is True
    after = _history(invoke, "iclosed", iclosed_booking, "?limit=100").body["reschedules"]
    assert len(after) == len(before) + 1
    assert after[0]["reschedule_id"] == first.body["reschedule_id"]


def test_a_refused_request_is_in_its_bookings_history_with_its_problems(
    invoke: Invoker, stack: Stack, iclosed_booking: str
) -> None:
    day = _start()[:10]
    answer = invoke(
        "POST",
        "/v1/reschedules",
        body={"provider": "iClosed", "id": iclosed_booking, "date": day, "time": "25:61", "timezone": "EST"},
    )
    assert answer.status == 422
    assert {e["field"] for e in answer.body["errors"]} == {"time", "timezone"}
    [latest] = _history(invoke, "iclosed", iclosed_booking, "?limit=1").body["reschedules"]
    assert latest["reschedule_id"] == answer.body["reschedule_id"]
    assert (latest["status"], latest["reason"]) == ("failed", "validation_failed")
    assert {(p["field"], p["code"]) for p in latest["problems"]} == {
        ("time", "invalid"),
        ("timezone", "invalid"),
    }
    assert all(p["message"] for p in latest["problems"])
    stored = json.dumps(stored_record(stack, answer.body["reschedule_id"]))
    assert "25:61" not in stored
    assert day not in stored


def test_an_unknown_booking_is_in_its_history(invoke: Invoker, sandboxes: dict[str, Sandbox]) -> None:
    missing = "3f2c9a4e-8b1d-4c6a-9e2f-1a2b3c4d5e6f"
    answer = invoke(
        "POST",
        "/v1/reschedules",
        body={"provider": "novacal", "booking_id": missing, "start": _start() + "Z"},
    )
    assert answer.status == 404, answer.body
    [latest] = _history(invoke, "novacal", missing, "?limit=1").body["reschedules"]
    assert (latest["reschedule_id"], latest["status"]) == (answer.body["reschedule_id"], "failed")


@pytest.mark.parametrize(
    ("path", "status", "field"),
    [
        ("/v1/bookings/nope/1/reschedules", 404, None),
        ("/v1/bookings/iclosed/abc/reschedules", 422, "booking_id"),
        ("/v1/bookings/iclosed/1001/reschedules?limit=0", 422, "limit"),
        ("/v1/bookings/iclosed/1001/reschedules?limit=1000", 422, "limit"),
        ("/v1/bookings/iclosed/1001/reschedules?cursor=bm90LWEtY3Vyc29y", 422, "cursor"),
        ("/v1/bookings/iclosed/1001/reschedules?cursor=%%%", 422, "cursor"),
    ],
)
def test_history_refuses_what_it_cannot_answer(
    invoke: Invoker, path: str, status: int, field: str | None
) -> None:
    answer = invoke("GET", path)
    assert answer.status == status, answer.body
    if field:
        assert answer.body["errors"][0]["field"] == field


def test_a_cursor_for_another_booking_is_refused(invoke: Invoker, sandboxes: dict[str, Sandbox]) -> None:
    booking = sandboxes["novacal"].bookings[4]
    for _ in range(2):
        invoke(
            "POST",
            "/v1/reschedules",
            body={"provider": "novacal", "booking_id": booking, "start": _start() + "Z"},
        )
    cursor = _history(invoke, "novacal", booking, "?limit=1").body["next_cursor"]
    assert cursor
    assert _history(invoke, "novacal", sandboxes["novacal"].bookings[3], f"?cursor={cursor}").status == 422


def test_history_needs_the_same_credentials_as_a_record(invoke: Invoker) -> None:
    assert _history(invoke, "iclosed", "1001", key=None).status == 401
    assert _history(invoke, "iclosed", "1001", key="sandbox-key-wrong").status == 401


# -- 3. dry_run --------------------------------------------------------------------------------------


def test_a_dry_run_answers_what_would_be_sent_and_sends_nothing(
    invoke: Invoker, sandboxes: dict[str, Sandbox], stack: Stack, iclosed_booking: str
) -> None:
    start = _start()
    locks = _locks(stack)
    answer = _move(invoke, iclosed_booking, start, reason="Conflict", dry_run=True)
    assert answer.status == 200, answer.body
    assert (answer.body["status"], answer.body["dry_run"]) == ("validated", True)
    assert answer.body["provider_request"] == {
        "method": "PUT",
        "path": "/v1/eventCalls/reschedule",
        "body": {
            "id": int(iclosed_booking),
            "dateTime": start,
            "timeZone": "UTC",
            "rescheduleReason": "Conflict",
        },
        "query": {},
    }
    assert "sandbox-token" not in json.dumps(answer.body)
    assert sandboxes["iclosed"].calls() == []
    assert _locks(stack) == locks  # no idempotency lock taken
    record = invoke("GET", f"/v1/reschedules/{answer.body['reschedule_id']}").body
    assert record["status"] == "validated"
    # And the live request that follows is not a replay of the dry run
    live = _move(invoke, iclosed_booking, start, reason="Conflict")
    assert (live.body["status"], live.body["replayed"]) == ("succeeded", False)
    assert [c["body"] for c in sandboxes["iclosed"].calls()] == [answer.body["provider_request"]["body"]]


def test_a_form_dry_run_is_validated_exactly_as_live(invoke: Invoker, sandboxes: dict[str, Sandbox]) -> None:
    booking = sandboxes["novacal"].bookings[2]
    form = f"provider=novacal&booking_id={booking}&start={_start()}Z&dry_run=1"
    answer = invoke("POST", "/v1/reschedules", body=form, content_type="application/x-www-form-urlencoded")
    assert (answer.status, answer.body["status"]) == (200, "validated")
    assert answer.body["provider_request"]["path"] == f"/v1/events/{booking}"
    bad = invoke(
        "POST",
        "/v1/reschedules",
        body=f"provider=novacal&booking_id={booking}&start=2020-01-01T10:00:00Z&dry_run=true",
        content_type="application/x-www-form-urlencoded",
    )
    assert (bad.status, bad.body["errors"][0]["code"]) == (422, "in_past")
    assert sandboxes["novacal"].calls() == []
