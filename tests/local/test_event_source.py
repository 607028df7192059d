"""The local SQS event source poller against moto's server over HTTP, with a fixture handler.

Each test makes its own queue pair from template.yaml, with a short visibility timeout and a low
maxReceiveCount so redeliveries and redrive happen in seconds, and reads what the handler saw
from the JSON lines it logs.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from local.event_source import (
    BatchOutcome,
    EventSourcePoller,
    event_source_config,
    failed_message_ids,
    handler_reference,
    start_event_source,
)
from local.processes import DUMMY_CLIENT_SETTINGS
from local.queues import LocalQueue, create_queues
from local.secrets_emulator import SecretsEmulator, sqs_client, start_secrets_emulator

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
HANDLER = "sqs_handler.lambda_handler"
# Short enough for quick redeliveries, long enough that a batch is handled well inside it.
VISIBILITY_TIMEOUT_SECONDS = 2
MAX_RECEIVE_COUNT = 2
FUNCTION_TIMEOUT_SECONDS = 3.0
# The poller's long poll in tests: short, so stop() returns quickly.
WAIT_TIME_SECONDS = 1
WAIT_LIMIT_SECONDS = 20.0
RECORD_KEYS = {
    "messageId",
    "receiptHandle",
    "body",
    "attributes",
    "messageAttributes",
    "md5OfBody",
    "md5OfMessageAttributes",
    "eventSource",
    "eventSourceARN",
    "awsRegion",
}


@pytest.fixture(scope="module")
def moto() -> Iterator[SecretsEmulator]:
    with start_secrets_emulator() as server:
        yield server


@pytest.fixture
def sqs(moto: SecretsEmulator) -> Any:
    return sqs_client(moto.endpoint)


@pytest.fixture
def queues(sqs: Any) -> dict[str, LocalQueue]:
    suffix = uuid.uuid4().hex[:8]
    names = {"DeliveryQueue": f"test-deliveries-{suffix}", "DeliveryDeadLetterQueue": f"test-dlq-{suffix}"}
    made = create_queues(sqs, names)
    # Test timings on the template's queues; the redrive target stays the template's DLQ.
    redrive = json.dumps(
        {"deadLetterTargetArn": made["DeliveryDeadLetterQueue"].arn, "maxReceiveCount": MAX_RECEIVE_COUNT}
    )
    sqs.set_queue_attributes(
        QueueUrl=made["DeliveryQueue"].url,
        Attributes={"VisibilityTimeout": str(VISIBILITY_TIMEOUT_SECONDS), "RedrivePolicy": redrive},
    )
    return made


class Run:
    """A poller on the test's queue, what it did (batches), and what the handler logged."""

    def __init__(self, moto: SecretsEmulator, sqs: Any, queues: dict[str, LocalQueue], log: Path) -> None:
        self.moto, self.sqs, self.queues, self.log = moto, sqs, queues, log
        self.outcomes: list[BatchOutcome] = []
        self.poller: EventSourcePoller | None = None

    @property
    def url(self) -> str:
        return self.queues["DeliveryQueue"].url

    def send(self, *bodies: dict[str, Any], **options: Any) -> list[str]:
        return [
            self.sqs.send_message(QueueUrl=self.url, MessageBody=json.dumps(body), **options)["MessageId"]
            for body in bodies
        ]

    def start(self, **options: Any) -> EventSourcePoller:
        settings: dict[str, Any] = {
            "queue_url": self.url,
            "queue_arn": self.queues["DeliveryQueue"].arn,
            "endpoint": self.moto.endpoint,
            "handler": HANDLER,
            "code_dir": FIXTURES,
            "batch_size": 5,
            "maximum_concurrency": 2,
            "function_timeout_s": FUNCTION_TIMEOUT_SECONDS,
            "function_name": "test-worker",
            "wait_time_seconds": WAIT_TIME_SECONDS,
            "on_batch": self.outcomes.append,
            "env": {
                "SQS_FIXTURE_LOG": str(self.log),
                "AWS_ENDPOINT_URL_SQS": self.moto.endpoint,
                "DELIVERY_QUEUE_URL": self.url,
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
                "AWS_REGION": DUMMY_CLIENT_SETTINGS["region_name"],
            },
        } | options
        self.poller = start_event_source(**settings)
        return self.poller

    def entries(self, phase: str = "start") -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        lines = self.log.read_text(encoding="utf-8").splitlines()
        return [entry for entry in map(json.loads, lines) if entry["phase"] == phase]

    def receipts(self) -> list[tuple[str, int, float]]:
        """(message id, receive count, invocation start) for every record the handler got."""
        return [(r["id"], r["receive_count"], e["started"]) for e in self.entries() for r in e["records"]]

    def counts(self, message_id: str) -> list[int]:
        return [count for mid, count, _ in self.receipts() if mid == message_id]

    def in_flight(self, url: str | None = None) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url or self.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )


@pytest.fixture
def run(moto: SecretsEmulator, sqs: Any, queues: dict[str, LocalQueue], tmp_path: Path) -> Iterator[Run]:
    current = Run(moto, sqs, queues, tmp_path / "handler.jsonl")
    yield current
    if current.poller is not None:
        current.poller.stop()


def wait_until(condition: Callable[[], Any], what: str, limit: float = WAIT_LIMIT_SECONDS) -> Any:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_batch_arrives_as_lambdas_sqs_event_and_is_deleted_after_success(run: Run) -> None:
    sent = run.send(
        {"n": 1},
        {"n": 2},
        MessageAttributes={
            "kind": {"DataType": "String", "StringValue": "reschedule"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    )
    run.start(maximum_concurrency=1)

    wait_until(lambda: len(run.receipts()) == 2 and run.outcomes, "both messages handled")
    records = [r for e in run.entries() for r in e["records"]]
    assert sorted(r["id"] for r in records) == sorted(sent)
    for record in records:
        assert set(record["keys"]) == RECORD_KEYS
        assert record["event_source_arn"] == run.queues["DeliveryQueue"].arn
        assert record["region"] == "us-east-1"
        attributes = record["attributes"]
        assert attributes["ApproximateReceiveCount"] == "1"
        assert {"SentTimestamp", "ApproximateFirstReceiveTimestamp", "SenderId"} <= set(attributes)
        assert int(attributes["ApproximateFirstReceiveTimestamp"]) >= int(attributes["SentTimestamp"])
        assert record["message_attributes"] == {
            "kind": {
                "stringValue": "reschedule",
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "String",
            },
            "blob": {
                "binaryValue": "AAE=",
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "Binary",
            },
        }
    (entry,) = run.entries()
    # The context counts down from the function's Timeout.
    assert 0 < entry["remaining_ms"] <= FUNCTION_TIMEOUT_SECONDS * 1000
    assert entry["function_name"] == "test-worker"
    wait_until(lambda: run.in_flight() == 0, "the handled messages deleted")


def test_batches_hold_at_most_batch_size_messages(run: Run) -> None:
    sent = run.send(*({"n": n} for n in range(7)))
    run.start(batch_size=3, maximum_concurrency=1)

    wait_until(lambda: len(run.receipts()) == 7, "all seven handled")
    sizes = [len(e["records"]) for e in run.entries()]
    assert max(sizes) == 3
    assert sum(sizes) == 7
    assert sorted(mid for mid, _, _ in run.receipts()) == sorted(sent)
    wait_until(lambda: run.in_flight() == 0, "every message deleted")


def test_only_the_reported_failures_come_back_after_the_visibility_timeout(run: Run) -> None:
    ok_first, failing, ok_last = run.send({"outcome": "ok"}, {"outcome": "fail"}, {"outcome": "ok"})
    run.start(maximum_concurrency=1)

    wait_until(lambda: len(run.counts(failing)) >= 2, "the failed message redelivered")
    assert run.counts(ok_first) == [1]
    assert run.counts(ok_last) == [1]
    assert run.counts(failing)[:2] == [1, 2]
    first, second = [started for mid, _, started in run.receipts() if mid == failing][:2]
    assert second - first >= VISIBILITY_TIMEOUT_SECONDS - 0.5


@pytest.mark.parametrize(
    ("outcome", "kind"),
    [("raise", "error"), ("exit", "crash"), ("bogus", "ok")],
    ids=["handler-raises", "process-crashes", "unknown-item-identifier"],
)
def test_a_failed_invocation_brings_the_whole_batch_back(run: Run, outcome: str, kind: str) -> None:
    good, bad = run.send({"outcome": "ok"}, {"outcome": outcome})
    run.start(maximum_concurrency=1)

    wait_until(lambda: len(run.counts(good)) >= 2, "the batch redelivered")
    assert run.counts(good)[:2] == [1, 2]
    assert run.counts(bad)[:2] == [1, 2]
    assert run.outcomes[0].kind == kind
    assert run.outcomes[0].failed_ids == {good, bad}


def test_a_timed_out_invocation_brings_the_whole_batch_back(run: Run) -> None:
    slow, other = run.send({"sleep": 5}, {"outcome": "ok"})
    run.start(maximum_concurrency=1, function_timeout_s=1.0)

    wait_until(lambda: len(run.counts(other)) >= 2, "the batch redelivered", limit=30)
    assert run.outcomes[0].kind == "timeout"
    assert run.counts(slow)[:2] == [1, 2]
    assert not run.entries("end")  # the handler never finished: it was stopped at the Timeout


def test_a_poison_message_moves_to_the_dead_letter_queue_after_max_receive_count(run: Run) -> None:
    (poison,) = run.send({"outcome": "fail"})
    run.start(maximum_concurrency=1)
    dlq = run.queues["DeliveryDeadLetterQueue"].url

    wait_until(lambda: run.in_flight(dlq) == 1, "the message in the DLQ", limit=30)
    moved = run.sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10)["Messages"]
    assert [m["MessageId"] for m in moved] == [poison]
    assert run.counts(poison) == list(range(1, MAX_RECEIVE_COUNT + 1))
    assert run.in_flight() == 0


def test_a_visibility_change_by_the_handler_decides_when_the_message_returns(run: Run, sqs: Any) -> None:
    # A long queue visibility timeout: only the handler's own 1 s brings the message back in time.
    sqs.set_queue_attributes(QueueUrl=run.url, Attributes={"VisibilityTimeout": "60"})
    (retried,) = run.send({"hide": 1})
    run.start(maximum_concurrency=1)

    wait_until(lambda: len(run.counts(retried)) >= 2, "the re-timed message back", limit=15)
    first, second = [started for mid, _, started in run.receipts() if mid == retried][:2]
    assert 0.9 <= second - first < 10


def test_no_more_than_maximum_concurrency_invocations_run_at_once(run: Run) -> None:
    run.send(*({"sleep": 1, "n": n} for n in range(4)))
    # Both containers warm first: a slow process start must not let one poller take every message.
    run.start(batch_size=1, maximum_concurrency=2, prestart=2)

    wait_until(lambda: len(run.entries("end")) == 4, "all four handled", limit=30)
    spans = [(e["started"], e["ended"]) for e in run.entries("end")]
    most_at_once = max(sum(1 for s, e in spans if s <= moment < e) for moment, _ in spans)
    assert most_at_once == 2
    assert len({e["pid"] for e in run.entries("end")}) == 2  # one container per poller, reused


def test_stop_ends_the_pollers_and_their_containers(run: Run) -> None:
    run.send({"outcome": "ok"})
    poller = run.start()
    wait_until(lambda: run.outcomes, "one batch handled")
    pids = poller.worker_pids()
    assert pids

    started = time.monotonic()
    poller.stop()
    assert time.monotonic() - started < 3
    assert poller.handling == 0
    assert poller.worker_pids() == []
    # A poller in a long poll ends when its poll does, and handles nothing it received.
    wait_until(lambda: not poller.running, "the pollers ended", limit=WAIT_TIME_SECONDS + 2)
    run.send({"outcome": "ok"})
    time.sleep(WAIT_TIME_SECONDS + 0.5)
    assert len(run.receipts()) == 1


def test_a_handler_that_cannot_be_imported_fails_the_start(run: Run) -> None:
    with pytest.raises(Exception, match="could not import"):
        run.start(handler="no_such_module.lambda_handler")


def test_the_mapping_settings_come_from_the_template() -> None:
    config = event_source_config()

    assert config.function_logical_id == "WorkerFunction"
    assert config.handler == "worker:lambda_handler"
    assert config.queue_logical_id == "DeliveryQueue"
    assert config.report_batch_item_failures is True
    assert config.batch_size == 5
    assert config.maximum_concurrency == 5
    assert config.timeout_s == 60


def test_handler_references_accept_both_forms() -> None:
    assert handler_reference("worker.lambda_handler") == "worker:lambda_handler"
    assert handler_reference("pkg/mod.handle") == "pkg.mod:handle"
    assert handler_reference("worker:lambda_handler") == "worker:lambda_handler"
    with pytest.raises(ValueError, match=r"module\.function"):
        handler_reference("lambda_handler")


@pytest.mark.parametrize(
    ("result", "failed"),
    [
        (None, set()),
        ({}, set()),
        ({"batchItemFailures": []}, set()),
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, {"b"}),
        ({"batchItemFailures": [{"itemIdentifier": "zz"}]}, {"a", "b"}),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, {"a", "b"}),
        ({"batchItemFailures": [{"other": "b"}]}, {"a", "b"}),
        ({"batchItemFailures": "b"}, {"a", "b"}),
    ],
)
def test_batch_item_failures_are_read_as_lambda_reads_them(result: Any, failed: set[str]) -> None:
    assert failed_message_ids(result, {"a", "b"}, report_batch_item_failures=True) == failed
    # Without ReportBatchItemFailures any answer is a success.
    assert failed_message_ids(result, {"a", "b"}, report_batch_item_failures=False) == set()
