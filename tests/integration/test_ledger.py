"""The ledger (relay/dal/ledger.py) against DynamoDB Local: every write it makes to an idempotency item,
for both doors, and the per-delivery lock."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from local.stack import TABLE_NAMES, Stack
from relay.dal.ledger import Ledger, ledger_key
from relay.dal.records import RecordStore
from relay.ports import Answered, Claim, KeyInProgress, KeyReused, LedgerKey, LockNotHeld, Stopping

TTL = 3600
LOCK = 30.0


@pytest.fixture
def ledger(stack: Stack) -> Ledger:
    client = stack.client("dynamodb")
    return Ledger(
        client, TABLE_NAMES["IdempotencyTable"], RecordStore(client, TABLE_NAMES["ReschedulesTable"])
    )


def _key(*, payload: Any = None, booking: str = "1001", content_keyed: bool = False) -> LedgerKey:
    scoped = f"ledger-test|header:{uuid.uuid4()}"
    return ledger_key(
        scoped,
        payload or {"start": "2030-01-01T10:00:00Z"},
        source="ledger-test",
        provider="iclosed",
        booking_id=booking,
        content_keyed=content_keyed,
    )


def _record(status: str = "succeeded", booking: str = "1001", **extra: Any) -> dict[str, Any]:
    return {
        "reschedule_id": str(uuid.uuid4()),
        "source": "ledger-test",
        "provider": "iclosed",
        "booking_id": booking,
        "booking_key": f"iclosed#{booking}",
        "attempted_at": "2030-01-01T00:00:00.000+00:00",
        "status": status,
        **extra,
    }


def _take(
    ledger: Ledger, key: LedgerKey, *, now: float | None = None, lock: float = LOCK
) -> Claim | Answered:
    now = time.time() if now is None else now
    return ledger.take(key, now=now, lock_seconds=lock, expires_at=int(now) + TTL)


def _item(stack: Stack, item_id: str) -> dict[str, Any] | None:
    answer = stack.client("dynamodb").get_item(
        TableName=TABLE_NAMES["IdempotencyTable"], Key={"id": {"S": item_id}}, ConsistentRead=True
    )
    item: dict[str, Any] | None = answer.get("Item")
    return item


def test_a_taken_key_is_busy_until_completed_then_answers_as_first_given(
    ledger: Ledger, stack: Stack
) -> None:
    key = _key()
    claim = _take(ledger, key)
    assert isinstance(claim, Claim)
    with pytest.raises(KeyInProgress):
        _take(ledger, key)

    # Keys deliberately out of alphabetical order: a replay keeps the first answer's order.
    answer = {"reschedule_id": "r1", "status": "succeeded", "booking_id": "1001", "replayed": False}
    record = _record()
    ledger.complete(claim, answer, record, expires_at=int(time.time()) + TTL)

    again = _take(ledger, key)
    assert isinstance(again, Answered)
    assert list(again.answer.items()) == list(answer.items())
    assert ledger.read_record(record["reschedule_id"]) is not None  # written with the completion
    last_move = _item(stack, key.last_move_id)
    assert last_move is not None
    assert last_move["move_key"]["S"] == key.item_id


def test_the_same_key_with_another_payload_is_refused_even_while_in_progress(ledger: Ledger) -> None:
    key = _key()
    _take(ledger, key)
    reused = ledger_key(
        "x",
        {"start": "2031-01-01T10:00:00Z"},
        source="s",
        provider="iclosed",
        booking_id="1",
        content_keyed=False,
    )
    with pytest.raises(KeyReused):
        _take(ledger, LedgerKey(key.item_id, reused.payload_hash, key.last_move_id, content_keyed=False))


def test_a_release_frees_the_key_and_records_the_failure_in_one_write(ledger: Ledger, stack: Stack) -> None:
    key = _key()
    claim = _take(ledger, key)
    assert isinstance(claim, Claim)
    record = _record("failed")

    ledger.release(claim, record)

    assert _item(stack, key.item_id) is None
    assert ledger.read_record(record["reschedule_id"])["status"] == "failed"  # type: ignore[index]
    assert isinstance(_take(ledger, key), Claim)


def test_a_lock_that_outlived_its_invocation_is_taken_by_the_next_request(ledger: Ledger) -> None:
    key = _key()
    now = time.time()
    assert isinstance(_take(ledger, key, now=now, lock=1), Claim)
    with pytest.raises(KeyInProgress):
        _take(ledger, key, now=now + 0.5)
    assert isinstance(_take(ledger, key, now=now + 2), Claim)


def test_a_content_keyed_success_stands_only_while_it_is_the_bookings_last_move(ledger: Ledger) -> None:
    booking = f"b-{uuid.uuid4().hex[:8]}"
    to_a = _key(payload={"start": "A"}, booking=booking, content_keyed=True)
    to_b = _key(payload={"start": "B"}, booking=booking, content_keyed=True)
    expires = int(time.time()) + TTL
    for key in (to_a, to_b):
        claim = _take(ledger, key)
        assert isinstance(claim, Claim)
        ledger.complete(
            claim, {"status": "succeeded", "to": key.item_id}, _record(booking=booking), expires_at=expires
        )

    # B is the last move: its repeat is a replay. A is not: A -> B -> A moves the booking back.
    assert isinstance(_take(ledger, to_b), Answered)
    assert isinstance(_take(ledger, to_a), Claim)
    with pytest.raises(KeyInProgress):  # taken over: held like any running request
        _take(ledger, to_a)


def test_an_explicit_key_stays_a_replay_after_other_moves(ledger: Ledger) -> None:
    booking = f"b-{uuid.uuid4().hex[:8]}"
    first, other = _key(booking=booking), _key(booking=booking)
    expires = int(time.time()) + TTL
    for key in (first, other):
        claim = _take(ledger, key)
        assert isinstance(claim, Claim)
        ledger.complete(claim, {"status": "succeeded"}, _record(booking=booking), expires_at=expires)
    assert isinstance(_take(ledger, first), Answered)


def test_a_queued_request_is_delivered_under_its_lock_and_a_cancel_during_its_call_comes_too_late(
    ledger: Ledger, stack: Stack
) -> None:
    key = _key()
    claim = _take(ledger, key)
    assert isinstance(claim, Claim)
    queued = _record("queued", idempotency_record=key.item_id)
    ledger.complete_queued(claim, {"status": "queued"}, queued, expires_at=int(time.time()) + TTL)
    assert _take(ledger, key) == Answered({"status": "queued"})

    now = int(time.time())
    ledger.lock_delivery(queued["reschedule_id"], "token-1", now=now, until=now + 60)
    with pytest.raises(LockNotHeld):  # another copy of the message
        ledger.lock_delivery(queued["reschedule_id"], "token-2", now=now, until=now + 60)
    with pytest.raises(LockNotHeld):  # another delivery may not send
        ledger.guard_send(queued["reschedule_id"], "token-2")
    ledger.guard_send(queued["reschedule_id"], "token-1")  # the call is under way
    with pytest.raises(Stopping):  # a cancel now: noted, not final
        ledger.cancel(
            {**queued, "status": "cancelled", "reason": "cancelled_by_source"}, item_id=key.item_id, now=now
        )
    assert ledger.read_record(queued["reschedule_id"])["stop_requested"] == "cancelled_by_source"  # type: ignore[index]
    with pytest.raises(LockNotHeld):  # no further call (a retry) starts
        ledger.guard_send(queued["reschedule_id"], "token-1")

    done = {**queued, "status": "succeeded"}
    ledger.delivered(
        done, "token-1", item_id=key.item_id, answer={"status": "succeeded"}, expires_at=now + TTL
    )

    assert _take(ledger, key) == Answered({"status": "succeeded"})
    assert ledger.read_record(queued["reschedule_id"])["status"] == "succeeded"  # type: ignore[index]
    last_move = _item(stack, key.last_move_id)
    assert last_move is not None
    assert last_move["move_key"]["S"] == key.item_id


def test_a_cancel_while_a_delivery_holds_the_lock_but_sends_nothing_ends_it_and_no_call_starts(
    ledger: Ledger,
) -> None:
    key = _key()
    claim = _take(ledger, key)
    assert isinstance(claim, Claim)
    queued = _record("queued", idempotency_record=key.item_id)
    ledger.complete_queued(claim, {"status": "queued"}, queued, expires_at=int(time.time()) + TTL)
    now = int(time.time())
    ledger.lock_delivery(queued["reschedule_id"], "token-1", now=now, until=now + 60)

    ledger.cancel({**queued, "status": "cancelled"}, item_id=key.item_id, now=now)

    assert ledger.read_record(queued["reschedule_id"])["status"] == "cancelled"  # type: ignore[index]
    with pytest.raises(LockNotHeld):  # the delivery's guard refuses its call
        ledger.guard_send(queued["reschedule_id"], "token-1")
    with pytest.raises(LockNotHeld):  # and its progress cannot bring it back
        ledger.progress(queued, "token-1")


def test_a_cancel_frees_the_key_of_a_queued_request_no_delivery_holds(ledger: Ledger, stack: Stack) -> None:
    key = _key()
    claim = _take(ledger, key)
    assert isinstance(claim, Claim)
    queued = _record("queued", idempotency_record=key.item_id)
    ledger.complete_queued(claim, {"status": "queued"}, queued, expires_at=int(time.time()) + TTL)

    ledger.cancel({**queued, "status": "cancelled"}, item_id=key.item_id, now=int(time.time()))

    assert _item(stack, key.item_id) is None
    assert ledger.read_record(queued["reschedule_id"])["status"] == "cancelled"  # type: ignore[index]


def test_an_item_written_by_the_powertools_utility_still_answers(ledger: Ledger, stack: Stack) -> None:
    # As Powertools stored a completed request: sorted JSON, its payload hash, no lock attribute.
    key = _key()
    answer = {"status": "succeeded", "reschedule_id": "r-old", "booking_id": "1001"}
    stack.client("dynamodb").put_item(
        TableName=TABLE_NAMES["IdempotencyTable"],
        Item={
            "id": {"S": key.item_id},
            "expiration": {"N": str(int(time.time()) + TTL)},
            "status": {"S": "COMPLETED"},
            "data": {"S": json.dumps(answer, sort_keys=True)},
            "validation": {"S": key.payload_hash},
        },
    )
    assert _take(ledger, key) == Answered(answer)


def test_an_async_request_takes_a_free_key_to_its_202_in_one_write_and_a_repeat_reads_it(
    ledger: Ledger,
) -> None:
    key = _key()
    now = time.time()
    queued = _record("queued", idempotency_record=key.item_id)
    answer = {"reschedule_id": queued["reschedule_id"], "status": "queued"}

    assert ledger.accept_queued(key, answer, queued, now=now, expires_at=int(now) + TTL) is None
    assert ledger.read_record(queued["reschedule_id"]) is not None
    assert ledger.answered_by(key.item_id) == queued["reschedule_id"]

    repeat = _record("queued", idempotency_record=key.item_id)
    again = ledger.accept_queued(key, {"status": "queued"}, repeat, now=now, expires_at=int(now) + TTL)
    assert again == Answered(answer)
    assert ledger.read_record(repeat["reschedule_id"]) is None  # the repeat's record is not written


def test_an_async_request_finds_a_running_key_busy(ledger: Ledger) -> None:
    key = _key()
    _take(ledger, key)
    assert ledger.answered_by(key.item_id) is None
    with pytest.raises(KeyInProgress):
        ledger.accept_queued(key, {}, _record("queued"), now=time.time(), expires_at=int(time.time()) + TTL)


def test_a_delivery_that_died_mid_call_leaves_no_mark_on_the_next_ones_lock(ledger: Ledger) -> None:
    key = _key()
    claim = _take(ledger, key)
    assert isinstance(claim, Claim)
    queued = _record("queued", idempotency_record=key.item_id)
    ledger.complete_queued(claim, {"status": "queued"}, queued, expires_at=int(time.time()) + TTL)
    now = int(time.time())
    # Given a delivery that marked its call and died (its lock ran out)
    ledger.lock_delivery(queued["reschedule_id"], "token-1", now=now, until=now + 1)
    ledger.guard_send(queued["reschedule_id"], "token-1")
    # When the next delivery locks it, a cancel before its call is final at once
    ledger.lock_delivery(queued["reschedule_id"], "token-2", now=now + 2, until=now + 60)
    ledger.cancel({**queued, "status": "cancelled"}, item_id=key.item_id, now=now + 2)
    assert ledger.read_record(queued["reschedule_id"])["status"] == "cancelled"  # type: ignore[index]


def test_a_release_after_an_unknown_outcome_makes_the_retry_read_first(ledger: Ledger, stack: Stack) -> None:
    key = _key()
    claim = _take(ledger, key)
    assert isinstance(claim, Claim)
    assert claim.settle_first is False

    ledger.release(claim, _record("failed"), unsettled=True)
    retry = _take(ledger, key)

    assert isinstance(retry, Claim)
    assert retry.settle_first is True
    ledger.release(retry, _record("failed"))  # settled this time: an ordinary release
    assert _item(stack, key.item_id) is None
