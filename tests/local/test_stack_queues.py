"""The local stack's delivery queues and worker event source (`make run`), with a fixture worker."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local.event_source import event_source_config
from local.stack import CODE_DIR, QUEUE_NAMES, Stack, start_stack, start_worker_event_source
from local.template import load_template
from relay.dal import clients
from relay.dal.queue import DeliveryQueue

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
WAIT_LIMIT_SECONDS = 20.0


@pytest.fixture(scope="module")
def log_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("worker") / "handler.jsonl"


@pytest.fixture(scope="module")
def queued_stack(log_path: Path) -> Iterator[Stack]:
    with start_stack(
        api_port=None,
        worker_code_dir=FIXTURES,
        worker_handler="sqs_handler.lambda_handler",
        extra_env={"SQS_FIXTURE_LOG": str(log_path)},
    ) as running:
        yield running


def _handled(log_path: Path) -> list[dict[str, Any]]:
    if not log_path.exists():
        return []
    entries = [json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines()]
    return [entry for entry in entries if entry["phase"] == "end"]


def test_the_queues_are_the_templates(queued_stack: Stack) -> None:
    sqs = queued_stack.client("sqs")
    template = load_template()["Resources"]
    url = queued_stack.queues["DeliveryQueue"].url

    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]

    expected = template["DeliveryQueue"]["Properties"]
    assert attributes["VisibilityTimeout"] == str(expected["VisibilityTimeout"])
    assert attributes["MessageRetentionPeriod"] == str(expected["MessageRetentionPeriod"])
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": queued_stack.queues["DeliveryDeadLetterQueue"].arn,
        "maxReceiveCount": expected["RedrivePolicy"]["maxReceiveCount"],
    }
    assert queued_stack.queues["DeliveryQueue"].name == QUEUE_NAMES["DeliveryQueue"]


def test_the_relay_is_given_the_queues_and_stack_json_names_them(queued_stack: Stack) -> None:
    env = queued_stack.env
    info = queued_stack.describe()

    assert env["AWS_ENDPOINT_URL_SQS"] == queued_stack.secrets.endpoint
    assert env["DELIVERY_QUEUE_URL"] == queued_stack.queues["DeliveryQueue"].url
    assert env["DEAD_LETTER_QUEUE_URL"] == queued_stack.queues["DeliveryDeadLetterQueue"].url
    assert env["DELIVERY_MAX_AGE_SECONDS"] == "86400"
    assert info["queue"] == {"url": env["DELIVERY_QUEUE_URL"], "dlq_url": env["DEAD_LETTER_QUEUE_URL"]}
    json.dumps(info)  # stack.json is written from it


def test_a_message_sent_through_the_relays_queue_reaches_the_worker(
    queued_stack: Stack, log_path: Path
) -> None:
    env = queued_stack.env
    client = clients.new_client(
        "sqs",
        endpoint_url=env["AWS_ENDPOINT_URL_SQS"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    queue = DeliveryQueue(client, env["DELIVERY_QUEUE_URL"], env["DEAD_LETTER_QUEUE_URL"])
    config = event_source_config()

    message_id = queue.send(json.dumps({"outcome": "ok"}))

    deadline = time.monotonic() + WAIT_LIMIT_SECONDS
    while not _handled(log_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    (entry,) = _handled(log_path)
    (record,) = entry["records"]
    assert record["id"] == message_id
    assert record["event_source_arn"] == queued_stack.queues["DeliveryQueue"].arn
    # The worker function as the template defines it: its name, and its Timeout counting down.
    assert entry["function_name"] == config.function_name
    assert (config.timeout_s - 5) * 1000 < entry["remaining_ms"] <= config.timeout_s * 1000
    assert queued_stack.event_source is not None
    assert queued_stack.event_source.maximum_concurrency == config.maximum_concurrency
    assert queued_stack.event_source.batch_size == config.batch_size


def test_no_event_source_without_a_worker_module(queued_stack: Stack, tmp_path: Path) -> None:
    template = load_template()

    assert start_worker_event_source(queued_stack, code_dir=tmp_path, handler=None, template=template) is None
    # The real worker (functions/reschedule/worker.py) is polled for as soon as it exists.
    polled = start_worker_event_source(queued_stack, code_dir=CODE_DIR, handler=None, template=template)
    try:
        assert (polled is not None) == (CODE_DIR / "worker.py").is_file()
    finally:
        if polled is not None:
            polled.stop()


def test_stopping_the_stack_stops_the_event_source(queued_stack: Stack) -> None:
    # Last in this module: it stops the module's stack (stop() is idempotent for the teardown).
    poller = queued_stack.event_source
    assert poller is not None
    assert poller.running

    started = time.monotonic()
    queued_stack.stop()

    assert time.monotonic() - started < 10  # no waiting out a 20 s long poll
    assert poller.handling == 0
    assert poller.worker_pids() == []
    deadline = time.monotonic() + WAIT_LIMIT_SECONDS
    while poller.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not poller.running
