"""Quotas per source (issue 23, part 4): through the HTTP door, and the counters on DynamoDB Local."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from local.seed import QUOTA_DEMO
from local.stack import TABLE_NAMES, Stack
from relay.dal.ledger import Ledger
from relay.dal.quotas import QuotaCounters
from relay.dal.records import RecordStore
from relay.ports import QuotaExceeded, SourceQuotas, backlog_key
from tests.helpers import Answer, Invoker, Sandbox, future, new_key, stored_record


def _counters(stack: Stack) -> QuotaCounters:
    return QuotaCounters(stack.client("dynamodb"), TABLE_NAMES["IdempotencyTable"])


def _item_id() -> str:
    return f"reschedule#{uuid.uuid4().hex}{uuid.uuid4().hex}"


def test_a_booking_moves_five_times_a_day_then_429_and_a_replay_never_counts(
    invoke: Invoker, sandboxes: dict[str, Sandbox], stack: Stack
) -> None:
    # Given a source with the default quotas, moving one booking with a new key each time
    body = {"provider": "iclosed", "booking_id": 1003, "timezone": "UTC"}
    keys = [new_key() for _ in range(6)]

    def move(key: str, hour: int) -> Answer:
        return invoke(
            "POST", "/v1/reschedules", body=body | {"start": future(days=120, hour=hour)},
            headers={"idempotency-key": key}, key=QUOTA_DEMO.api_key,
        )  # fmt: skip

    moved = [move(key, 8 + n) for n, key in enumerate(keys[:5])]
    assert [m.status for m in moved] == [200] * 5, [m.body for m in moved]
    # When it asks for a sixth move of that booking today
    sixth = move(keys[5], 14)
    # Then 429, with the seconds until midnight UTC, recorded and no provider call
    assert (sixth.status, sixth.body["code"]) == (429, "quota_moves_per_booking_per_day")
    midnight = datetime.combine(datetime.now(UTC).date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    retry_after = int(sixth.headers["retry-after"])
    assert 0 < retry_after <= int(midnight.timestamp() - time.time()) + 1
    assert stored_record(stack, sixth.body["reschedule_id"])["reason"] == "quota_moves_per_booking_per_day"
    assert len(sandboxes["iclosed"].calls()) == 5
    # And a replay (Zapier's autoreplay: the same key again) is still answered, quota full or not
    replay = move(keys[0], 8)
    assert (replay.status, replay.body["replayed"]) == (200, True)
    # While another booking of the same source is not limited by this one's count
    other = invoke(
        "POST", "/v1/reschedules", body=body | {"booking_id": 1002, "start": future(days=120, hour=9)},
        headers={"idempotency-key": new_key()}, key=QUOTA_DEMO.api_key,
    )  # fmt: skip
    assert other.status == 200, other.body
    assert len(sandboxes["iclosed"].calls()) == 6


def test_requests_per_minute_count_each_key_once_and_reopen_next_minute(stack: Stack) -> None:
    counters = _counters(stack)
    source = f"rate-{uuid.uuid4().hex[:8]}"
    quotas = SourceQuotas(requests_per_minute=3, queued_backlog=None, moves_per_booking_per_day=None)
    now = float(int(time.time()) // 60 * 60 + 10)  # 10 s into a minute
    keys = [_item_id() for _ in range(4)]
    for key in keys[:3]:
        counters.count(source, key, provider="iclosed", booking_id="1", quotas=quotas, now=now)
    with pytest.raises(QuotaExceeded) as over:
        counters.count(source, keys[3], provider="iclosed", booking_id="1", quotas=quotas, now=now + 1)
    assert (over.value.quota, over.value.retry_after) == ("requests_per_minute", 49)
    # The same key again is no new request; the next minute has room
    counters.count(source, keys[0], provider="iclosed", booking_id="1", quotas=quotas, now=now + 2)
    counters.count(source, keys[3], provider="iclosed", booking_id="1", quotas=quotas, now=now + 60)


def test_moves_per_day_fail_the_transaction_without_counting_the_request(stack: Stack) -> None:
    counters = _counters(stack)
    source = f"moves-{uuid.uuid4().hex[:8]}"
    quotas = SourceQuotas(requests_per_minute=100, queued_backlog=None, moves_per_booking_per_day=1)
    now = time.time()
    counters.count(source, _item_id(), provider="iclosed", booking_id="7", quotas=quotas, now=now)
    with pytest.raises(QuotaExceeded) as over:
        counters.count(source, _item_id(), provider="iclosed", booking_id="7", quotas=quotas, now=now)
    assert over.value.quota == "moves_per_booking_per_day"
    minute = int(now) // 60
    item = stack.client("dynamodb").get_item(
        TableName=TABLE_NAMES["IdempotencyTable"], Key={"id": {"S": f"quota#rate#{source}#{minute}"}}
    )["Item"]
    assert len(item["keys"]["SS"]) == 1  # the refused request took no place in the minute


def test_the_queued_backlog_is_bounded_and_a_cancel_gives_its_place_back(stack: Stack) -> None:
    # Given a source whose backlog holds 2, with 2 requests queued
    dynamodb = stack.client("dynamodb")
    counters = _counters(stack)
    records = RecordStore(dynamodb, TABLE_NAMES["ReschedulesTable"])
    ledger = Ledger(dynamodb, TABLE_NAMES["IdempotencyTable"], records)
    source = f"backlog-{uuid.uuid4().hex[:8]}"
    quotas = SourceQuotas(queued_backlog=2)
    first, second, third = _item_id(), _item_id(), _item_id()
    for key in (first, second):
        counters.enter_backlog(source, key, quotas=quotas, now=time.time())
    # Then a third is refused, while the first again (a repeat) is not
    with pytest.raises(QuotaExceeded) as over:
        counters.enter_backlog(source, third, quotas=quotas, now=time.time())
    assert (over.value.quota, over.value.retry_after) == ("queued_backlog", 60)
    counters.enter_backlog(source, first, quotas=quotas, now=time.time())
    # When the first is cancelled (the ledger's write that ends its queued state)
    queued = {
        "reschedule_id": str(uuid.uuid4()),
        "source": source,
        "attempted_at": "2030-01-01T00:00:00.000+00:00",
        "status": "queued",
    }
    records.put(queued)
    ledger.cancel(queued | {"status": "cancelled"}, item_id=first, now=int(time.time()))
    # Then its place is free for the third
    counters.enter_backlog(source, third, quotas=quotas, now=time.time())
    item = dynamodb.get_item(
        TableName=TABLE_NAMES["IdempotencyTable"], Key={"id": {"S": backlog_key(source)}}
    )
    assert len(item["Item"]["keys"]["SS"]) == 2


def test_an_async_requests_counts_and_its_backlog_place_are_one_write(stack: Stack) -> None:
    # Given a source whose backlog is full
    counters = _counters(stack)
    source = f"async-{uuid.uuid4().hex[:8]}"
    quotas = SourceQuotas(requests_per_minute=10, queued_backlog=1, moves_per_booking_per_day=None)
    now = float(int(time.time()) // 60 * 60 + 5)
    counters.count(
        source, _item_id(), provider="novacal", booking_id="b", quotas=quotas, now=now, queued=True
    )
    # When another async request comes, then the backlog refuses it and nothing of it is counted
    with pytest.raises(QuotaExceeded) as over:
        counters.count(
            source, _item_id(), provider="novacal", booking_id="b", quotas=quotas, now=now, queued=True
        )
    assert (over.value.quota, over.value.retry_after) == ("queued_backlog", 60)
    minute = int(now) // 60
    item = stack.client("dynamodb").get_item(
        TableName=TABLE_NAMES["IdempotencyTable"], Key={"id": {"S": f"quota#rate#{source}#{minute}"}}
    )["Item"]
    assert len(item["keys"]["SS"]) == 1
