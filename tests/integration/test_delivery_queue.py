"""relay/dal/queue.py against moto's server over HTTP, on queues made from template.yaml."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from local.processes import DUMMY_CLIENT_SETTINGS, free_port
from local.queues import LocalQueue, create_queues
from local.secrets_emulator import SecretsEmulator, sqs_client, start_secrets_emulator
from local.template import load_template
from relay.dal import clients
from relay.dal.queue import DeliveryQueue
from relay.ports import (
    MAX_DELAY_SECONDS,
    MAX_VISIBILITY_TIMEOUT_SECONDS,
    QueueUnavailable,
)


@pytest.fixture(scope="module")
def moto() -> Iterator[SecretsEmulator]:
    with start_secrets_emulator() as server:
        yield server


@pytest.fixture
def queues(moto: SecretsEmulator) -> dict[str, LocalQueue]:
    suffix = uuid.uuid4().hex[:8]
    names = {"DeliveryQueue": f"dal-deliveries-{suffix}", "DeliveryDeadLetterQueue": f"dal-dlq-{suffix}"}
    return create_queues(sqs_client(moto.endpoint), names)


@pytest.fixture
def sqs(moto: SecretsEmulator) -> Any:
    """The relay's own client (its timeouts and retries), pointed at moto."""
    return clients.new_client("sqs", endpoint_url=moto.endpoint, **DUMMY_CLIENT_SETTINGS)


@pytest.fixture
def queue(sqs: Any, queues: dict[str, LocalQueue]) -> DeliveryQueue:
    return DeliveryQueue(sqs, queues["DeliveryQueue"].url, queues["DeliveryDeadLetterQueue"].url)


def _receive(sqs: Any, url: str, wait: int = 0) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=wait, AttributeNames=["All"]
    ).get("Messages", [])
    return messages


def _count(sqs: Any, url: str, attribute: str) -> int:
    answer = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[attribute])
    return int(answer["Attributes"][attribute])


def test_send_queues_the_body(queue: DeliveryQueue, sqs: Any, queues: dict[str, LocalQueue]) -> None:
    message_id = queue.send('{"reschedule_id": "r-1"}')

    (message,) = _receive(sqs, queues["DeliveryQueue"].url)
    assert message["MessageId"] == message_id
    assert message["Body"] == '{"reschedule_id": "r-1"}'


def test_a_delay_past_sqs_cap_is_clamped_not_refused(
    queue: DeliveryQueue, sqs: Any, queues: dict[str, LocalQueue]
) -> None:
    # SQS refuses DelaySeconds over 900; the queue sends the longest delay it can instead.
    queue.send("later", delay_seconds=MAX_DELAY_SECONDS * 10)
    queue.send("now", delay_seconds=-5)

    url = queues["DeliveryQueue"].url
    assert _count(sqs, url, "ApproximateNumberOfMessagesDelayed") == 1
    assert [m["Body"] for m in _receive(sqs, url)] == ["now"]


def test_change_visibility_hides_the_message_for_the_given_time(
    queue: DeliveryQueue, sqs: Any, queues: dict[str, LocalQueue]
) -> None:
    url = queues["DeliveryQueue"].url
    queue.send("retry me")
    (message,) = _receive(sqs, url)

    assert queue.change_visibility(message["ReceiptHandle"], 1) == 1

    assert _receive(sqs, url) == []
    (again,) = _receive(sqs, url, wait=3)
    assert again["MessageId"] == message["MessageId"]
    assert again["Attributes"]["ApproximateReceiveCount"] == "2"


def test_a_visibility_past_sqs_cap_is_clamped_not_refused(
    queue: DeliveryQueue, sqs: Any, queues: dict[str, LocalQueue]
) -> None:
    url = queues["DeliveryQueue"].url
    queue.send("much later")
    (message,) = _receive(sqs, url)

    applied = queue.change_visibility(message["ReceiptHandle"], 7 * 24 * 3600)

    assert applied == MAX_VISIBILITY_TIMEOUT_SECONDS
    assert _count(sqs, url, "ApproximateNumberOfMessagesNotVisible") == 1
    # Zero makes it visible again at once.
    assert queue.change_visibility(message["ReceiptHandle"], 0) == 0
    assert [m["Body"] for m in _receive(sqs, url)] == ["much later"]


def test_send_to_dead_letter_parks_the_body_there_only(
    queue: DeliveryQueue, sqs: Any, queues: dict[str, LocalQueue]
) -> None:
    message_id = queue.send_to_dead_letter('{"reschedule_id": "r-2", "reason": "max_age"}')

    (parked,) = _receive(sqs, queues["DeliveryDeadLetterQueue"].url)
    assert parked["MessageId"] == message_id
    assert parked["Body"] == '{"reschedule_id": "r-2", "reason": "max_age"}'
    assert _receive(sqs, queues["DeliveryQueue"].url) == []


def test_an_unreachable_queue_is_queue_unavailable() -> None:
    # Nothing listens on this port: connection refused, after the client's own retry.
    closed = f"http://127.0.0.1:{free_port()}"
    client = clients.new_client("sqs", endpoint_url=closed, **DUMMY_CLIENT_SETTINGS)
    queue = DeliveryQueue(client, f"{closed}/123456789012/q", f"{closed}/123456789012/dlq")

    with pytest.raises(QueueUnavailable) as raised:
        queue.send("body")

    problem = raised.value.problem()
    assert (problem["status"], problem["code"], problem["retry_after"]) == (503, "queue_unavailable", 5)
    assert raised.value.sqs_code == ""
    assert "body" not in str(raised.value)


def test_sqs_refusals_are_queue_unavailable_with_sqs_code(
    sqs: Any, queues: dict[str, LocalQueue], queue: DeliveryQueue
) -> None:
    missing = DeliveryQueue(sqs, queues["DeliveryQueue"].url + "-gone", queues["DeliveryDeadLetterQueue"].url)

    with pytest.raises(QueueUnavailable) as gone:
        missing.send("secret-looking sandbox-body")
    with pytest.raises(QueueUnavailable) as stale:
        queue.change_visibility("not-a-receipt-handle", 5)

    assert gone.value.sqs_code  # moto's and SQS's code for a queue that does not exist
    assert stale.value.sqs_code == "ReceiptHandleIsInvalid"
    assert "sandbox-body" not in str(gone.value.problem())


def test_one_sqs_client_per_container(relay_module: Any) -> None:
    # With the stack's environment (relay_module), and no cache_clear: the in-process handler of
    # other tests holds this very client (test_budgets counts its calls), whatever the test order.
    first = clients.sqs()
    assert clients.sqs() is first
    assert first.meta.service_model.service_name == "sqs"
    assert first.meta.config.read_timeout == clients.AWS_READ_TIMEOUT_SECONDS


def test_the_visibility_cap_leaves_room_for_the_invocation_that_received_the_message() -> None:
    # SQS counts its 12 h from the receive: the clamp must stay under it by more than a worker run.
    worker_timeout_seconds = load_template()["Resources"]["WorkerFunction"]["Properties"]["Timeout"]
    assert MAX_VISIBILITY_TIMEOUT_SECONDS + worker_timeout_seconds < 12 * 3600


def test_a_queue_given_a_factory_makes_its_client_at_the_first_sqs_call_once(
    sqs: Any, queues: dict[str, LocalQueue]
) -> None:
    made: list[Any] = []

    def connect() -> Any:
        made.append(sqs)
        return sqs

    queue = DeliveryQueue(connect, queues["DeliveryQueue"].url, queues["DeliveryDeadLetterQueue"].url)
    assert made == []  # built at cold start without a client: a sync request never needs one
    queue.send("sandbox-first")
    queue.send("sandbox-second")
    assert made == [sqs]
    assert sorted(m["Body"] for m in _receive(sqs, queues["DeliveryQueue"].url, wait=1)) == [
        "sandbox-first",
        "sandbox-second",
    ]
