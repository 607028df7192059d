"""Queued requests in a Lambda-like "container": a child process that imports the HTTP handler (and,
for in-container deliveries, the worker handler) once and calls them directly, as Lambda does.

    python -m bench.queue_container RESULT_PATH    # the spec comes as JSON on stdin (bench.queueing)

Phases (`spec["phase"]`):

- `queue` (no worker polls the queue meanwhile): per iteration an async request (`Prefer:
  respond-async`, 202), its repeat (the same 202), a sync new reschedule and its sync replay, each
  timed with its DynamoDB, SQS and Secrets Manager sends counted. Then the queue is emptied and a few
  async requests, to the unpaced default account and to a paced one, are delivered here by the
  worker handler, one message per invocation, counting the sends of each delivery.
  Last, a burst of async requests to a paced account is queued (the sandbox's limits reset), for:
- `paced` (the stack's worker now polls): waits for the burst's outcomes; its provider calls, 429s.
- `recovery` (the stack's worker polls): the provider is put in an outage, requests are queued,
  the outage ends once each has failed an attempt; the time from its end to each `succeeded`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime
from typing import Any

import boto3
import httpx

from bench.counting import CONTROL_TIMEOUT_SECONDS, count_sends
from bench.lambda_env import WORKER_TIMEOUT_SECONDS
from bench.workload import Reschedule, Workload, check_answer, check_queued, lambda_context

# How often the records of queued requests are read while waiting for their outcome.
RECORD_POLL_SECONDS = 0.25
# Longer than this without every outcome is a stuck stack, not a slow one.
SETTLE_SECONDS = 180.0
# The outage is ended by the bench itself (DELETE); this only stops it if the bench dies.
OUTAGE_LIMIT_SECONDS = 600
# How long a receive waits for the messages of the in-container deliveries.
RECEIVE_WAIT_SECONDS = 1
# The floor's message: about the size of a delivery order (emptied with the iterations' orders).
FLOOR_ORDER = json.dumps({"floor": "x" * 900})


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _instant(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


class Container:
    def __init__(self, spec: dict[str, Any]) -> None:
        import app  # noqa: PLC0415 - the environment is set before this process starts
        from relay.dal import clients  # noqa: PLC0415

        self.spec = spec
        self.handler = app.lambda_handler
        # The relay's own cached clients, to count their sends (the worker handler shares them).
        self.dynamodb = clients.dynamodb()
        self.sqs = clients.sqs()
        self.secretsmanager = clients.secretsmanager()
        # The bench's own clients and sandbox connections: never counted as the relay's.
        self.own_dynamodb = boto3.client("dynamodb")
        self.own_sqs = boto3.client("sqs")
        self.queue_url = os.environ["DELIVERY_QUEUE_URL"]
        self.records_table = os.environ["RESCHEDULES_TABLE_NAME"]
        self.idempotency_table = os.environ["IDEMPOTENCY_TABLE_NAME"]
        self.workload = Workload(f"queue-{spec['phase']}")
        self.samples: dict[str, list[Any]] = {}

    def _record(self, name: str, value: Any) -> None:
        self.samples.setdefault(name, []).append(value)

    def _counted(self, action: Any) -> tuple[Any, float, float, dict[str, list[str]]]:
        """Run `action`: its result, wall ms, CPU ms and the operations each relay client sent."""
        with (
            count_sends(self.dynamodb) as dynamodb,
            count_sends(self.sqs) as sqs,
            count_sends(self.secretsmanager) as secrets,
        ):
            cpu_started = time.process_time()
            started = time.perf_counter()
            result = action()
            elapsed_ms = _ms(started)
            cpu_ms = (time.process_time() - cpu_started) * 1000
        calls = {"dynamodb": dynamodb.operations, "sqs": sqs.operations, "secrets": secrets.operations}
        return result, elapsed_ms, cpu_ms, calls

    def _request(self, name: str, reschedule: Reschedule, *, respond_async: bool, record: bool) -> Any:
        event, context = reschedule.event(respond_async=respond_async), lambda_context()
        result, elapsed_ms, cpu_ms, calls = self._counted(lambda: self.handler(event, context))
        if record:
            self._record(f"{name}_ms", elapsed_ms)
            self._record(f"{name}_cpu_ms", cpu_ms)
            for service, operations in calls.items():
                self._record(f"{name}_{service}_calls", len(operations))
            self._record(f"{name}_operations", ",".join(calls["dynamodb"] + calls["sqs"]))
        return result

    def accept(self, reschedule: Reschedule) -> str:
        """Queue one async request, uncounted; its reschedule id."""
        return check_queued(self.handler(reschedule.event(respond_async=True), lambda_context()))

    # -- phase `queue` --------------------------------------------------------------------------------

    def queue_iteration(self, *, record: bool) -> None:
        queued = self.workload.next()
        first = check_queued(self._request("async_new", queued, respond_async=True, record=record))
        again = check_queued(self._request("async_repeat", queued, respond_async=True, record=record))
        if again != first:
            raise RuntimeError(f"an async repeat answered another reschedule id: {again} != {first}")
        sync = self.workload.next()
        check_answer(self._request("sync_new", sync, respond_async=False, record=record), replayed=False)
        check_answer(self._request("sync_replay", sync, respond_async=False, record=record), replayed=True)
        floor_ms = self.floor(f"queue-floor#{queued.key}")
        if record:
            self._record("floor_ms", floor_ms)

    def floor(self, item_id: str) -> float:
        """The least a 202 needs: send the order (SendMessage), then one conditional PutItem that takes
        the key already complete with the queued answer, in sequence with the bench's own clients;
        wall ms. Sent first, as the relay does, so nothing is accepted that is not queued."""
        started = time.perf_counter()
        self.own_sqs.send_message(QueueUrl=self.queue_url, MessageBody=FLOOR_ORDER)
        self.own_dynamodb.put_item(
            TableName=self.idempotency_table,
            Item={
                "id": {"S": item_id},
                "expiration": {"N": str(int(time.time()) + 3600)},
                "status": {"S": "QUEUED"},
                "data": {"S": FLOOR_ORDER},
            },
            ConditionExpression="attribute_not_exists(id)",
        )
        return _ms(started)

    def deliver_here(self, name: str, reschedules: list[Reschedule]) -> None:
        """Queue these, then deliver each with the worker handler here, one message per invocation."""
        import worker  # noqa: PLC0415 - only the phase that delivers in-container needs it

        from local.event_source import sqs_record  # noqa: PLC0415

        ids = {self.accept(reschedule) for reschedule in reschedules}
        delivered: set[str] = set()
        deadline = time.monotonic() + SETTLE_SECONDS
        while delivered != ids:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(ids - delivered)} queued messages never arrived")
            answer = self.own_sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=1,
                WaitTimeSeconds=RECEIVE_WAIT_SECONDS,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            for message in answer.get("Messages", []):
                rid = json.loads(message["Body"])["reschedule_id"]
                if rid not in ids:
                    raise RuntimeError("the queue held a message the bench did not queue")
                event = {"Records": [sqs_record(message, queue_arn="arn:aws:sqs:bench", region="us-east-1")]}
                context = lambda_context(WORKER_TIMEOUT_SECONDS)
                result, elapsed_ms, _cpu, calls = self._counted(lambda: worker.lambda_handler(event, context))  # noqa: B023
                if result.get("batchItemFailures"):
                    raise RuntimeError(f"an in-container delivery was left for later: {result!r}")
                self.own_sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
                self._record(f"{name}_ms", elapsed_ms)
                self._record(f"{name}_dynamodb_calls", len(calls["dynamodb"]))
                self._record(f"{name}_sqs_calls", len(calls["sqs"]))
                self._record(f"{name}_operations", ",".join(calls["dynamodb"] + calls["sqs"]))
                delivered.add(rid)
        for rid in ids:
            if self.record(rid).get("status") != "succeeded":
                raise RuntimeError(f"in-container delivery {rid} did not succeed")

    def run_queue(self) -> None:
        spec = self.spec
        for _ in range(spec["warmup"]):
            self.queue_iteration(record=False)
        for _ in range(spec["iterations"]):
            self.queue_iteration(record=True)
        # The queue now holds the iterations' orders (nobody polls it): empty it for the deliveries.
        self.own_sqs.purge_queue(QueueUrl=self.queue_url)
        unpaced = [self.workload.next() for _ in range(spec["deliveries"])]
        self.deliver_here("delivery", unpaced)
        paced = [
            self.workload.next(
                provider="novacal", booking_id=spec["paced_booking"], account=spec["paced_account"]
            )
            for _ in range(spec["deliveries"])
        ]
        self.deliver_here("paced_delivery", paced)

    # -- waiting for outcomes ---------------------------------------------------------------------------

    def record(self, reschedule_id: str) -> dict[str, Any]:
        item = self.own_dynamodb.get_item(
            TableName=self.records_table, Key={"reschedule_id": {"S": reschedule_id}}, ConsistentRead=True
        ).get("Item", {})
        return {key: next(iter(value.values())) for key, value in item.items()}

    def wait_for(self, ids: list[str], done: Any, what: str) -> dict[str, dict[str, Any]]:
        """Read the records until `done(record)` holds for each; their records then."""
        deadline = time.monotonic() + SETTLE_SECONDS
        pending, seen = set(ids), {}
        while pending:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(pending)} of {len(ids)} requests never {what}")
            for rid in sorted(pending):
                record = self.record(rid)
                if done(record):
                    seen[rid] = record
                    pending.discard(rid)
            if pending:
                time.sleep(RECORD_POLL_SECONDS)
        return seen

    # -- phase `recovery` -------------------------------------------------------------------------------

    def run_recovery(self, provider_url: str) -> dict[str, Any]:
        spec = self.spec
        with httpx.Client(base_url=provider_url, timeout=CONTROL_TIMEOUT_SECONDS) as sandbox:
            sandbox.post(
                "/_sandbox/outage", json={"seconds": OUTAGE_LIMIT_SECONDS, "status": 503}
            ).raise_for_status()
            try:
                ids = [self.accept(self.workload.next()) for _ in range(spec["requests"])]
                failed = self.wait_for(
                    ids,
                    lambda r: r.get("status") == "queued" and int(r.get("attempts") or 0) >= 1,
                    "failed once",
                )
            finally:
                ended_at = time.time()
                sandbox.delete("/_sandbox/outage").raise_for_status()
            done = self.wait_for(ids, lambda r: r.get("status") != "queued", "finished")
            calls = [c for c in sandbox.get("/_sandbox/calls").json() if c["method"] != "GET"]
        if {r["status"] for r in done.values()} != {"succeeded"}:
            raise RuntimeError(f"recovery outcomes: {sorted({r['status'] for r in done.values()})}")
        finished = {rid: _instant(r["finished_at"]) for rid, r in done.items()}
        return {
            "outage_ended_at": ended_at,
            "since_outage_end_s": [finished[rid] - ended_at for rid in ids],
            # How late each delivery came after the attempt time its record showed when the outage ended.
            "late_s": [finished[rid] - _instant(failed[rid]["next_attempt_at"]) for rid in ids],
            "attempts_at_outage_end": [int(failed[rid]["attempts"]) for rid in ids],
            "attempts": [int(done[rid]["attempts"]) for rid in ids],
            "provider_calls_after_outage": sum(1 for c in calls if c["at"] >= ended_at),
        }

    # -- phase `paced` ----------------------------------------------------------------------------------

    def queue_burst(self, provider_url: str) -> dict[str, Any]:
        """Queue the paced burst (no worker polls yet), with the sandbox's limits and calls reset."""
        spec = self.spec
        target = {
            "provider": "novacal",
            "booking_id": spec["paced_booking"],
            "account": spec["paced_account"],
        }
        with httpx.Client(base_url=provider_url, timeout=CONTROL_TIMEOUT_SECONDS) as sandbox:
            sandbox.delete("/_sandbox/limits").raise_for_status()  # clears the 429 count too
            for limit in spec["limits"]:
                sandbox.post("/_sandbox/limits", json=limit).raise_for_status()
            sandbox.delete("/_sandbox/calls").raise_for_status()
        started = time.perf_counter()
        ids = [self.accept(self.workload.next(**target)) for _ in range(spec["burst"])]
        return {"burst_ids": ids, "burst_accept_s": time.perf_counter() - started}

    def run_paced(self, provider_url: str) -> dict[str, Any]:
        """Wait for the burst the worker now delivers; its outcomes, provider calls and 429s."""
        spec = self.spec
        done = self.wait_for(spec["burst_ids"], lambda r: r.get("status") != "queued", "finished")
        with httpx.Client(base_url=provider_url, timeout=CONTROL_TIMEOUT_SECONDS) as sandbox:
            rejected = sandbox.get("/_sandbox/limits").json()["rejected"]
            calls = sorted(
                c["at"]
                for c in sandbox.get("/_sandbox/calls").json()
                if c["method"] == "PUT"
                and c["headers"].get("authorization") == f"Bearer {spec['paced_token']}"
            )
        if {r["status"] for r in done.values()} != {"succeeded"}:
            raise RuntimeError(f"paced outcomes: {sorted({r['status'] for r in done.values()})}")
        return {
            "finished_at": sorted(_instant(r["finished_at"]) for r in done.values()),
            "provider_calls_at": calls,
            "attempts": [int(r["attempts"]) for r in done.values()],
            "rejected": rejected,
        }


def main() -> int:
    result_path = sys.argv[1]
    spec = json.load(sys.stdin)
    started = time.perf_counter()
    container = Container(spec)
    result: dict[str, Any] = {}
    if spec["phase"] == "queue":
        container.run_queue()
        result = container.queue_burst(spec["provider_url"])
    elif spec["phase"] == "recovery":
        result = container.run_recovery(spec["provider_url"])
    elif spec["phase"] == "paced":
        result = container.run_paced(spec["provider_url"])
    else:
        raise SystemExit(f"unknown phase {spec['phase']!r}")
    result |= {"samples": container.samples, "seconds": time.perf_counter() - started}
    with open(result_path, "w", encoding="utf-8") as out:  # noqa: PTH123
        json.dump(result, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
