"""A worker that receives an order before the door's record write has landed (the door sends the
order first; an idle worker polls within milliseconds) reads again in-process and delivers it, instead
of re-showing the message whole seconds later. Real DynamoDB Local, moto's SQS and the iClosed sandbox;
the order comes from the real door, on a queue of this test's own (no worker polls it)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from local.stack import REGION, TABLE_NAMES, Stack, start_stack
from tests.helpers import ZAPIER, future, new_key, stored_record

OPTIONS = {"region_name": REGION, "aws_access_key_id": "sandbox", "aws_secret_access_key": "sandbox"}


@pytest.fixture(scope="module")
def ostack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with start_stack(api_port=None, worker_code_dir=tmp_path_factory.mktemp("no-worker")) as stack:
        yield stack


def test_an_order_that_overtook_its_record_is_delivered_in_the_same_invocation(
    ostack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from relay.composition import build  # noqa: PLC0415 - relay is importable once conftest set the path
    from relay.dal.clients import new_client  # noqa: PLC0415
    from relay.dal.ledger import Ledger  # noqa: PLC0415
    from relay.dal.queue import DeliveryQueue  # noqa: PLC0415
    from relay.dal.records import RecordStore  # noqa: PLC0415
    from relay.deadline import Deadline  # noqa: PLC0415
    from relay.reschedule import delivery  # noqa: PLC0415
    from relay.reschedule.delivery import ORPHAN_REREAD_PAUSES_SECONDS, Deliveries  # noqa: PLC0415
    from relay.reschedule.modes import Mode  # noqa: PLC0415
    from relay.reschedule.normalise import command_from  # noqa: PLC0415
    from relay.reschedule.schedule import Disposition, ReceivedMessage  # noqa: PLC0415
    from relay.settings import settings_from  # noqa: PLC0415

    sqs = new_client("sqs", endpoint_url=ostack.secrets.endpoint, **OPTIONS)
    dynamodb = new_client("dynamodb", endpoint_url=ostack.dynamodb.endpoint, **OPTIONS)
    queue_url = sqs.create_queue(QueueName=f"overtake-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    settings = settings_from(ostack.env | {"DELIVERY_QUEUE_URL": queue_url})
    relay = build(
        settings,
        dynamodb=dynamodb,
        secretsmanager=new_client("secretsmanager", endpoint_url=ostack.secrets.endpoint, **OPTIONS),
        sqs=lambda: sqs,
    )
    body = {"provider": "iclosed", "booking_id": 1001, "start": future(days=61), "timezone": "UTC"}
    command = command_from(body, allowed_providers=["iclosed"], settings=settings)
    answer = relay.service.reschedule(
        command, source=ZAPIER.name, idempotency_key=new_key(), deadline=Deadline.within(10), mode=Mode.ASYNC
    )
    rid = answer["reschedule_id"]
    (message,) = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=2)["Messages"]
    # As the worker saw it: the order is in the queue, its record not yet written.
    key = {"reschedule_id": {"S": rid}}
    table = TABLE_NAMES["ReschedulesTable"]
    written = dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
    dynamodb.delete_item(TableName=table, Key=key)
    pauses: list[float] = []

    def door_write_lands(seconds: float) -> None:
        if not pauses:
            dynamodb.put_item(TableName=table, Item=written)
        pauses.append(seconds)

    records = RecordStore(dynamodb, settings.reschedules_table_name)
    deliveries = Deliveries(
        settings,
        step=relay.service._step,
        ledger=Ledger(dynamodb, settings.idempotency_table_name, records),
        queue=DeliveryQueue(sqs, queue_url, settings.dead_letter_queue_url),
        sleep=door_write_lands,
    )
    # The order counts as young for the whole test: on a loaded machine its set-up alone can take
    # longer than the real window (1 s), which is about an idle worker's millisecond receive.
    monkeypatch.setattr(delivery, "ORPHAN_REREAD_WITHIN_SECONDS", 60.0)
    iclosed = ostack.sandboxes["iclosed"].url
    httpx.delete(f"{iclosed}/_sandbox/calls").raise_for_status()
    outcome = deliveries.deliver(
        ReceivedMessage(message["Body"], message["ReceiptHandle"], 1), Deadline.within(25)
    )

    assert outcome is Disposition.FINISHED
    assert pauses == [ORPHAN_REREAD_PAUSES_SECONDS[0]]
    record: dict[str, Any] = stored_record(ostack, rid)
    assert (record["status"], record["attempts"]) == ("succeeded", "1")
    moves = [c for c in httpx.get(f"{iclosed}/_sandbox/calls").json() if c["method"] != "GET"]
    assert len(moves) == 1


def test_a_queued_orders_personal_fields_stay_out_of_the_queue_and_reach_the_provider(ostack: Stack) -> None:
    from relay.composition import build  # noqa: PLC0415 - relay is importable once conftest set the path
    from relay.dal.clients import new_client  # noqa: PLC0415
    from relay.deadline import Deadline  # noqa: PLC0415
    from relay.reschedule.modes import Mode  # noqa: PLC0415
    from relay.reschedule.normalise import command_from  # noqa: PLC0415
    from relay.reschedule.schedule import Disposition, ReceivedMessage  # noqa: PLC0415
    from relay.settings import settings_from  # noqa: PLC0415

    sqs = new_client("sqs", endpoint_url=ostack.secrets.endpoint, **OPTIONS)
    dynamodb = new_client("dynamodb", endpoint_url=ostack.dynamodb.endpoint, **OPTIONS)
    queue_url = sqs.create_queue(QueueName=f"personal-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    settings = settings_from(ostack.env | {"DELIVERY_QUEUE_URL": queue_url})
    relay = build(
        settings,
        dynamodb=dynamodb,
        secretsmanager=new_client("secretsmanager", endpoint_url=ostack.secrets.endpoint, **OPTIONS),
        sqs=lambda: sqs,
    )
    note, reason = "sandbox-note-call-me-after-five", "sandbox-reason-travel"
    body = {
        "provider": "iclosed",
        "booking_id": 1001,
        "start": future(days=62),
        "timezone": "UTC",
        "notes": note,
        "reason": reason,
    }
    command = command_from(body, allowed_providers=["iclosed"], settings=settings)
    answer = relay.service.reschedule(
        command, source=ZAPIER.name, idempotency_key=new_key(), deadline=Deadline.within(10), mode=Mode.ASYNC
    )
    (message,) = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=2)["Messages"]
    assert note not in message["Body"]
    assert reason not in message["Body"]

    iclosed = ostack.sandboxes["iclosed"].url
    httpx.delete(f"{iclosed}/_sandbox/calls").raise_for_status()
    assert relay.deliveries is not None
    outcome = relay.deliveries.deliver(
        ReceivedMessage(message["Body"], message["ReceiptHandle"], 1), Deadline.within(25)
    )

    assert outcome is Disposition.FINISHED
    assert stored_record(ostack, answer["reschedule_id"])["status"] == "succeeded"
    (move,) = [c for c in httpx.get(f"{iclosed}/_sandbox/calls").json() if c["method"] != "GET"]
    assert (move["body"]["notes"], move["body"]["rescheduleReason"]) == (note, reason)
    # Delivered: the ledger no longer holds them either.
    item_id = stored_record(ostack, answer["reschedule_id"])["idempotency_record"]
    key_item = dynamodb.get_item(TableName=TABLE_NAMES["IdempotencyTable"], Key={"id": {"S": item_id}})[
        "Item"
    ]
    assert "personal" not in key_item
