"""A local SQS event source mapping: polls a queue and invokes a Lambda handler with SQS events.

It behaves like Lambda's SQS event source mapping (the parts the relay relies on):

- ``MaximumConcurrency`` pollers, each long-polling (``WaitTimeSeconds``) for up to ``BatchSize``
  messages (more than 10 are gathered within ``MaximumBatchingWindowInSeconds``), so at most that
  many invocations run at once;
- each batch becomes the event Lambda sends (``Records`` with ``messageId``, ``receiptHandle``,
  ``body``, ``attributes``, ``messageAttributes``, ``md5OfBody``, ``eventSource``,
  ``eventSourceARN``, ``awsRegion``), and the handler runs in a worker process ("container") with a
  Lambda context counting down from the function's Timeout;
- the messages that succeeded are deleted; with ``ReportBatchItemFailures`` the ones named in
  ``batchItemFailures`` are left alone, so they reappear when their visibility timeout ends (or
  when the handler said, if it changed their visibility itself);
- a handler that raises, crashes or times out, or whose answer names a message not in the batch,
  fails the whole batch: nothing is deleted;
- after ``maxReceiveCount`` receives SQS itself (moto's server too) moves a message to the queue's
  dead-letter queue.

Usage::

    poller = start_event_source(queue_url=..., queue_arn=..., handler="worker.lambda_handler",
                                code_dir=Path("functions/reschedule"), env={...},
                                batch_size=5, maximum_concurrency=5, function_timeout_s=60)
    ...
    poller.stop()
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

# The API emulator's Lambda containers: both doors run their handler the same way.
from local.emulator import function_config
from local.emulator.workers import PoolBusyError, PoolClosedError, WorkerInitError, WorkerPool, WorkerSpec
from local.lambda_context import DEFAULT_REGION
from local.template import load_template

# Lambda's long poll: the longest wait SQS allows per ReceiveMessage.
DEFAULT_WAIT_TIME_SECONDS = 20
# SQS's cap on messages per ReceiveMessage (and per DeleteMessageBatch).
SQS_MAX_MESSAGES_PER_CALL = 10
# SAM's defaults for an SQS event (BatchSize) and for a mapping without ScalingConfig (AWS: up to 1,000).
DEFAULT_BATCH_SIZE = 10
DEFAULT_MAXIMUM_CONCURRENCY = 2
# After SQS could not be reached, wait this long before polling again (moto restarting, stack stopping).
POLL_ERROR_BACKOFF_SECONDS = 1.0
# How long stop() waits for the batches being handled to end (their containers are stopped first).
STOP_WAIT_SECONDS = 5.0
# How long stop() gives idle poller threads to notice it (one in a long poll ends when the poll does).
STOP_JOIN_SECONDS = 0.2
# The read timeout must outlast the long poll, or every empty poll would look like an error.
_READ_TIMEOUT_MARGIN_SECONDS = 10
# Fail fast when moto is down: the poll loop itself waits and tries again.
_CLIENT_CONFIG_DEFAULTS: dict[str, Any] = {"connect_timeout": 2, "retries": {"max_attempts": 1}}

SQS_EVENT_TYPE = "SQS"
REPORT_BATCH_ITEM_FAILURES = "ReportBatchItemFailures"


# --------------------------------------------------------------------------------------------
# The mapping's settings, from template.yaml


@dataclass(frozen=True)
class EventSourceConfig:
    """One SQS event of a function in the template, with the function's own settings."""

    function_logical_id: str
    function_name: str
    handler: str  # "module:function"
    timeout_s: float
    memory_mb: int
    queue_logical_id: str
    batch_size: int
    maximum_concurrency: int
    batching_window_s: float
    report_batch_item_failures: bool


def handler_reference(sam_handler: str) -> str:
    """``worker.lambda_handler`` (SAM's form) -> ``worker:lambda_handler`` (the workers' form)."""
    if ":" in sam_handler:
        return sam_handler
    module, _, function = sam_handler.rpartition(".")
    if not module:
        raise ValueError(f"handler must be 'module.function', got {sam_handler!r}")
    return f"{module.replace('/', '.')}:{function}"


def event_source_config(
    template: Mapping[str, Any] | None = None, *, function: str = "WorkerFunction"
) -> EventSourceConfig:
    """The SQS event source of ``function`` (a logical id) in the parsed template."""
    template = load_template() if template is None else template
    resource = template["Resources"][function]
    properties = resource.get("Properties") or {}
    events = [
        event for event in (properties.get("Events") or {}).values() if event.get("Type") == SQS_EVENT_TYPE
    ]
    if len(events) != 1:
        raise ValueError(f"{function} needs exactly one SQS event, has {len(events)}")
    event = events[0].get("Properties") or {}
    queue = event.get("Queue")
    if not (isinstance(queue, dict) and list(queue) == ["Fn::GetAtt"] and queue["Fn::GetAtt"][1] == "Arn"):
        raise ValueError(f"{function}'s SQS event must name a template queue with !GetAtt <Queue>.Arn")
    handler = handler_reference(str(properties["Handler"]))
    base = function_config(template, handler=handler, function=function)
    scaling = event.get("ScalingConfig") or {}
    return EventSourceConfig(
        function_logical_id=function,
        function_name=base.function_name,
        handler=handler,
        timeout_s=base.timeout_s,
        memory_mb=base.memory_mb,
        queue_logical_id=str(queue["Fn::GetAtt"][0]),
        batch_size=int(event.get("BatchSize", DEFAULT_BATCH_SIZE)),
        maximum_concurrency=int(scaling.get("MaximumConcurrency", DEFAULT_MAXIMUM_CONCURRENCY)),
        batching_window_s=float(event.get("MaximumBatchingWindowInSeconds", 0)),
        report_batch_item_failures=REPORT_BATCH_ITEM_FAILURES in (event.get("FunctionResponseTypes") or []),
    )


# --------------------------------------------------------------------------------------------
# Events


def _lambda_message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    """One SQS API message attribute as Lambda puts it in a record (binary values base64)."""

    def encoded(data: Any) -> str:
        return base64.b64encode(data).decode("ascii") if isinstance(data, bytes | bytearray) else str(data)

    attribute: dict[str, Any] = {
        "stringListValues": list(value.get("StringListValues", [])),
        "binaryListValues": [encoded(item) for item in value.get("BinaryListValues", [])],
        "dataType": value["DataType"],
    }
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = encoded(value["BinaryValue"])
    return attribute


def sqs_record(message: Mapping[str, Any], *, queue_arn: str, region: str) -> dict[str, Any]:
    """The Lambda event record for one message from ``ReceiveMessage`` (all attributes asked for)."""
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {
            name: _lambda_message_attribute(value)
            for name, value in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def failed_message_ids(result: Any, batch_ids: set[str], *, report_batch_item_failures: bool) -> set[str]:
    """The messages of a batch a handler's answer leaves in the queue, as Lambda reads the answer.

    Without ReportBatchItemFailures any answer is a success. With it, ``batchItemFailures`` names
    the failures; an answer without failures (None, ``{}``, an empty list) is a full success, and an
    identifier that is empty or not in the batch fails the whole batch.
    """
    if not report_batch_item_failures or not isinstance(result, dict):
        return set()
    failures = result.get("batchItemFailures")
    if not failures:
        return set()
    if not isinstance(failures, list):
        return set(batch_ids)
    named = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not isinstance(identifier, str) or identifier not in batch_ids:
            return set(batch_ids)
        named.add(identifier)
    return named


# --------------------------------------------------------------------------------------------
# The poller


@dataclass(frozen=True)
class BatchOutcome:
    """What happened to one batch: the invocation's kind and the messages left in the queue."""

    kind: str  # "ok", "error" (raised), "timeout", "crash", "init_error"
    message_ids: tuple[str, ...]
    failed_ids: frozenset[str]


class EventSourcePoller:
    """An SQS event source mapping in front of a handler (see the module docstring).

    - ``queue_url``, ``queue_arn``: the event source; ``endpoint``: the SQS endpoint (moto)
    - ``handler``: ``module.function`` or ``module:function`` in ``code_dir`` (the CodeUri)
    - ``batch_size``, ``maximum_concurrency``, ``batching_window_s``, ``report_batch_item_failures``:
      the mapping's settings; ``function_timeout_s``, ``function_name``, ``memory_mb``: the function's
    - ``wait_time_seconds``: each ReceiveMessage's long poll (Lambda: 20 s)
    - ``env``: variables of the handler's workers; ``on_batch``: called with each ``BatchOutcome``
    - ``prestart``: containers started (and their import checked) before polling starts
    """

    def __init__(
        self,
        *,
        queue_url: str,
        queue_arn: str,
        endpoint: str,
        handler: str,
        code_dir: Path,
        env: Mapping[str, str] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        maximum_concurrency: int = DEFAULT_MAXIMUM_CONCURRENCY,
        batching_window_s: float = 0.0,
        report_batch_item_failures: bool = True,
        function_timeout_s: float = 3.0,
        function_name: str = "worker-local",
        memory_mb: int = 1024,
        wait_time_seconds: int = DEFAULT_WAIT_TIME_SECONDS,
        region: str = DEFAULT_REGION,
        on_batch: Callable[[BatchOutcome], None] | None = None,
        prestart: int = 1,
    ) -> None:
        if batch_size < 1 or maximum_concurrency < 1:
            raise ValueError("batch_size and maximum_concurrency must be at least 1")
        if batch_size > SQS_MAX_MESSAGES_PER_CALL and batching_window_s <= 0:
            raise ValueError("a batch size over 10 needs a batching window (as in Lambda)")
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.batch_size = batch_size
        self.maximum_concurrency = maximum_concurrency
        self.batching_window_s = batching_window_s
        self.report_batch_item_failures = report_batch_item_failures
        self.function_timeout_s = function_timeout_s
        self.wait_time_seconds = wait_time_seconds
        self.region = region
        self._endpoint = endpoint
        self._on_batch = on_batch
        self._prestart = prestart
        spec = WorkerSpec(
            handler=handler_reference(handler),
            code_dir=str(Path(code_dir).resolve()),
            function_name=function_name,
            memory_mb=memory_mb,
            env={str(name): str(value) for name, value in (env or {}).items()},
        )
        # One container per poller: a poller waits for its invocation before polling again.
        self._pool = WorkerPool(spec, maximum_concurrency)
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._stop_lock = threading.Lock()
        self._handling = 0  # batches between receive and delete
        self._handling_done = threading.Condition()

    # lifecycle

    def start(self) -> EventSourcePoller:
        """Start ``prestart`` containers (a handler that cannot be imported fails here), then poll."""
        self._pool.prestart(self._prestart)
        # Clients first (one per poller: boto3 clients are not shared across threads): each takes
        # ~0.2 s to build, so once start() returns every poller polls at once (a backlog waits on none).
        clients = [self._client() for _ in range(self.maximum_concurrency)]
        for number, client in enumerate(clients):
            thread = threading.Thread(
                target=self._poll_forever, args=(client,), name=f"sqs-poller-{number}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop polling and every container; returns once no batch is being handled. Idempotent.

        A batch being handled is abandoned as a crashed invocation would be: its messages come back
        after their visibility timeout. A poller in a long poll ends when the poll returns (within
        ``wait_time_seconds``) and leaves what it received in the queue, never handled.
        """
        with self._stop_lock:
            if self._stopping.is_set():
                return
            self._stopping.set()
        self._pool.close()
        with self._handling_done:
            self._handling_done.wait_for(lambda: self._handling == 0, timeout=STOP_WAIT_SECONDS)
        deadline = time.monotonic() + STOP_JOIN_SECONDS
        for thread in self._threads:
            thread.join(timeout=max(deadline - time.monotonic(), 0))

    @property
    def running(self) -> bool:
        """Whether a poller thread is still alive (after stop(): only one finishing a long poll)."""
        return any(thread.is_alive() for thread in self._threads)

    @property
    def handling(self) -> int:
        """Batches received and not yet settled (deleted or left)."""
        with self._handling_done:
            return self._handling

    def worker_pids(self) -> list[int]:
        return self._pool.pids()

    def __enter__(self) -> EventSourcePoller:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # polling

    def _client(self) -> Any:
        config = Config(
            read_timeout=self.wait_time_seconds + _READ_TIMEOUT_MARGIN_SECONDS, **_CLIENT_CONFIG_DEFAULTS
        )
        return boto3.session.Session().client(
            "sqs",
            endpoint_url=self._endpoint,
            region_name=self.region,
            aws_access_key_id="local",
            aws_secret_access_key="local",
            config=config,
        )

    def _poll_forever(self, client: Any) -> None:
        while not self._stopping.is_set():
            try:
                messages = self._receive_batch(client)
                if messages and self._begin_batch():
                    try:
                        self._handle(client, messages)
                    finally:
                        self._end_batch()
            except (BotoCoreError, ClientError) as exc:
                if self._stopping.is_set():
                    return
                _log(f"SQS call failed ({type(exc).__name__}); polling again shortly")
                self._stopping.wait(POLL_ERROR_BACKOFF_SECONDS)
            except (PoolClosedError, PoolBusyError):
                return

    def _begin_batch(self) -> bool:
        with self._handling_done:
            if self._stopping.is_set():
                return False
            self._handling += 1
            return True

    def _end_batch(self) -> None:
        with self._handling_done:
            self._handling -= 1
            self._handling_done.notify_all()

    def _receive(self, client: Any, count: int, wait_s: int) -> list[dict[str, Any]]:
        answer = client.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=min(count, SQS_MAX_MESSAGES_PER_CALL),
            WaitTimeSeconds=wait_s,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = answer.get("Messages", [])
        return messages

    def _receive_batch(self, client: Any) -> list[dict[str, Any]]:
        """One long poll, then more messages until the batch is full or the batching window ends."""
        messages = self._receive(client, self.batch_size, self.wait_time_seconds)
        if not messages or self.batching_window_s <= 0:
            return messages
        window_ends = time.monotonic() + self.batching_window_s
        while len(messages) < self.batch_size and not self._stopping.is_set():
            left = window_ends - time.monotonic()
            if left <= 0:
                break
            messages += self._receive(client, self.batch_size - len(messages), min(int(left), 1))
        return messages

    def _handle(self, client: Any, messages: list[dict[str, Any]]) -> None:
        event = {"Records": [sqs_record(m, queue_arn=self.queue_arn, region=self.region) for m in messages]}
        kind, result = self._invoke(event)
        ids = tuple(m["MessageId"] for m in messages)
        if kind == "ok":
            failed = failed_message_ids(
                result, set(ids), report_batch_item_failures=self.report_batch_item_failures
            )
        else:
            failed = set(ids)  # raised, crashed or timed out: the whole batch comes back
        succeeded = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(succeeded), SQS_MAX_MESSAGES_PER_CALL):
            chunk = succeeded[start : start + SQS_MAX_MESSAGES_PER_CALL]
            answer = client.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(chunk)],
            )
            for failure in answer.get("Failed", []):
                # As in Lambda: a message that could not be deleted comes back and is handled again.
                _log(f"could not delete a handled message ({failure.get('Code')}); it will be redelivered")
        if self._on_batch is not None:
            self._on_batch(BatchOutcome(kind, ids, frozenset(failed)))

    def _invoke(self, event: dict[str, Any]) -> tuple[str, Any]:
        """Run the handler on an idle container: ``(kind, result)`` with kind as in ``BatchOutcome``."""
        try:
            worker = self._pool.acquire(wait_s=self.function_timeout_s)
        except WorkerInitError as exc:
            _log(str(exc))
            return "init_error", None
        aws_request_id = str(uuid.uuid4())
        started = time.time()
        deadline_ms = int((started + self.function_timeout_s) * 1000)
        trace = event["Records"][0]["attributes"].get("AWSTraceHeader", "").split(";", 1)[0]
        trace = trace or f"Root=1-{int(started):08x}-{secrets.token_hex(12)}"
        kind, payload = worker.invoke(
            (json.dumps(event), deadline_ms, aws_request_id, trace), wait_s=self.function_timeout_s
        )
        self._pool.release(worker, reusable=kind in ("ok", "error"))
        if kind == "timeout":
            _log(f"{aws_request_id} Task timed out after {time.time() - started:.2f} seconds")
        elif kind == "crash":
            _log(f"{aws_request_id} worker exited during the invocation (Runtime.ExitError)")
        result = None
        if kind == "ok" and payload is not None:
            with contextlib.suppress(ValueError):
                result = json.loads(payload)
        return kind, result


def start_event_source(**options: Any) -> EventSourcePoller:
    """Build and start a poller (options as for `EventSourcePoller`)."""
    return EventSourcePoller(**options).start()


def _log(message: str) -> None:
    print(f"[sqs-event-source] {message}", file=sys.stderr, flush=True)
