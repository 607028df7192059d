"""Warm requests in one Lambda-like "container": a child process that imports the handler once and
calls `app.lambda_handler(event, context)` directly, as Lambda does, against the bench's stack.

    python -m bench.container RESULT_PATH    # the spec comes as JSON on stdin (bench.warm)

A process of its own, apart from the stack's in-process sandbox servers, so `time.process_time()`
around a handler call is the handler's CPU alone. Per iteration, in this order:

1. a new reschedule (unique key and start): wall time, CPU, DynamoDB and Secrets Manager sends;
2. its replay (the same key again): the same figures;
3. the floor: the same provider PUT with urllib3 (keep-alive) and one conditional PutItem (boto3),
   wall time and CPU; then a second, sequential DynamoDB round trip (a conditional UpdateItem that
   completes the item with a record): "floor2", the least an exactly-once relay with a stored
   answer needs (take the lock, call the provider, complete the lock), wall time and CPU; and, for
   reference, the same second round trip as a transaction that also puts the attempt record
   (TransactWriteItems: update the lock item, put the record), as a relay must to store both at once;
4. one GetItem alone.

The provider delays each call by `delay_ms` (sandbox fault), armed per block of iterations for
exactly the calls the block makes (two per iteration: the relay's and the floor's) and checked to be
used up after it, so every measured provider call had the delay and no call went missing.
Warm-up iterations run first, without the delay. Then `connection_requests` new reschedules run
with the sandbox's connection counter reset, to count the TCP connections they opened.

With `"implementation": "peer"` the container is the peer's (bench/peer/app.py, its read-only tree as
the working directory): per iteration a new reschedule and its replay only (one provider call,
armed the same way), their DynamoDB sends counted on the peer's own client.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from typing import Any

from bench.counting import SandboxControl, count_sends
from bench.workload import PROVIDER_SECRET_NAME, Reschedule, Workload, check_answer, lambda_context


class Floor:
    """The least any implementation must do per warm request: one provider PUT, one PutItem."""

    def __init__(self, provider_url: str, table: str) -> None:
        import boto3  # noqa: PLC0415 - the container's import of app comes first
        import urllib3  # noqa: PLC0415

        self._url = provider_url
        self._table = table
        self._http = urllib3.PoolManager()
        self.dynamodb = boto3.client("dynamodb")
        secret = boto3.client("secretsmanager").get_secret_value(SecretId=PROVIDER_SECRET_NAME)
        self._token = json.loads(secret["SecretString"])["api_key"]

    def provider_put(self, reschedule: Reschedule) -> None:
        path, body = reschedule.provider_request()
        answer = self._http.request(
            "PUT",
            self._url + path,
            body=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self._token}"},
        )
        json.loads(answer.data)
        if answer.status != 200:
            raise RuntimeError(f"floor provider call answered {answer.status}: {answer.data[:200]!r}")

    def put_item(self, item_id: str) -> None:
        self.dynamodb.put_item(
            TableName=self._table,
            Item={"id": {"S": item_id}, "expiration": {"N": str(int(time.time()) + 3600)}},
            ConditionExpression="attribute_not_exists(id)",
        )

    def complete_item(self, item_id: str) -> None:
        """The second round trip: complete the lock with the stored answer, only if it is ours."""
        self.dynamodb.update_item(
            TableName=self._table,
            Key={"id": {"S": item_id}},
            UpdateExpression="SET #status = :completed, #data = :record",
            ConditionExpression="attribute_exists(id)",
            ExpressionAttributeNames={"#status": "status", "#data": "data"},
            ExpressionAttributeValues={
                ":completed": {"S": "COMPLETED"},
                ":record": {"S": '{"status":"succeeded","provider":"iclosed"}'},
            },
        )

    def complete_with_record(self, item_id: str) -> None:
        """The second round trip as one transaction: complete the lock and put the attempt record."""
        self.dynamodb.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": {"id": {"S": item_id}},
                        "UpdateExpression": "SET #status = :completed, #data = :record",
                        "ConditionExpression": "attribute_exists(id)",
                        "ExpressionAttributeNames": {"#status": "status", "#data": "data"},
                        "ExpressionAttributeValues": {
                            ":completed": {"S": "COMPLETED"},
                            ":record": {"S": '{"status":"succeeded","provider":"iclosed"}'},
                        },
                    }
                },
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": {
                            "id": {"S": f"{item_id}#record"},
                            "status": {"S": "succeeded"},
                            "expiration": {"N": str(int(time.time()) + 3600)},
                        },
                    }
                },
            ]
        )

    def get_item(self, item_id: str) -> None:
        if "Item" not in self.dynamodb.get_item(TableName=self._table, Key={"id": {"S": item_id}}):
            raise RuntimeError(f"floor item {item_id} is missing")


def _timed(action: Any) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


# Provider calls per iteration: the relay's new reschedule and the floor's PUT; the peer's new one.
PROVIDER_CALLS = {"relay": 2, "peer": 1}


class Container:
    def __init__(self, spec: dict[str, Any]) -> None:
        import app  # noqa: PLC0415 - the environment is set before this process starts

        self.peer = spec.get("implementation", "relay") == "peer"
        self.handler = app.lambda_handler
        self.floor: Floor | None = None
        self.secretsmanager: Any = None
        if self.peer:
            peer_app: Any = app  # bench/peer/app.py: the working directory's app, not the relay's
            self.dynamodb = peer_app.dynamodb  # its one client (its persistence layer's and its record's)
        else:
            from relay.dal import clients  # noqa: PLC0415

            self.dynamodb = clients.dynamodb()  # the relay's own cached clients, to count their sends
            self.secretsmanager = clients.secretsmanager()
            self.floor = Floor(spec["provider_url"], spec["floor_table"])
        self.workload = Workload("peer" if self.peer else "warm")
        self.samples: dict[str, list[float]] = {}
        self.operations: dict[str, list[str]] = {}  # the DynamoDB operations of each request
        self._first_answer: Any = None  # the peer's answer to the latest new reschedule

    def _record(self, name: str, value: float) -> None:
        self.samples.setdefault(name, []).append(value)

    def _check(self, result: dict[str, Any], *, replayed: bool) -> None:
        if not self.peer:
            check_answer(result, replayed=replayed)
            return
        # The peer's replay is Powertools' stored answer: the first answer again (its keys sorted).
        if result.get("statusCode") != 200:
            raise RuntimeError(f"the peer answered {result.get('statusCode')}: {result.get('body')!r}")
        answer = json.loads(result.get("body") or "null")
        if replayed and answer != self._first_answer:
            raise RuntimeError(f"the peer's replay is not its first answer: {result.get('body')!r}")
        self._first_answer = answer

    def _handle(self, reschedule: Reschedule, *, replayed: bool, record: bool) -> None:
        event, context = reschedule.event(), lambda_context()
        counting_secrets = (
            contextlib.nullcontext(None) if self.secretsmanager is None else count_sends(self.secretsmanager)
        )
        with count_sends(self.dynamodb) as dynamodb, counting_secrets as secrets:
            cpu_started = time.process_time()
            started = time.perf_counter()
            result = self.handler(event, context)
            elapsed_ms = (time.perf_counter() - started) * 1000
            cpu_ms = (time.process_time() - cpu_started) * 1000
        self._check(result, replayed=replayed)
        if record:
            kind = "replay" if replayed else "new"
            self._record(f"{kind}_ms", elapsed_ms)
            self._record(f"{kind}_cpu_ms", cpu_ms)
            self._record(f"{kind}_dynamodb_calls", len(dynamodb))
            if secrets is not None:
                self._record("secrets_calls", len(secrets))
            self.operations.setdefault(kind, []).append(",".join(dynamodb.operations))

    def iteration(self, *, record: bool) -> None:
        reschedule = self.workload.next()
        self._handle(reschedule, replayed=False, record=record)
        self._handle(reschedule, replayed=True, record=record)
        if self.floor is not None:
            self._floors(reschedule, record=record)

    def _floors(self, reschedule: Reschedule, *, record: bool) -> None:
        assert self.floor is not None
        item_id = f"floor#{reschedule.key}"
        cpu_started = time.process_time()
        put_ms = _timed(lambda: self.floor.provider_put(reschedule))
        put_item_ms = _timed(lambda: self.floor.put_item(item_id))
        floor_cpu_ms = (time.process_time() - cpu_started) * 1000
        complete_ms = _timed(lambda: self.floor.complete_item(item_id))
        floor2_cpu_ms = (time.process_time() - cpu_started) * 1000
        get_item_ms = _timed(lambda: self.floor.get_item(item_id))
        tx_id = f"floortx#{reschedule.key}"
        self.floor.put_item(tx_id)
        transaction_ms = _timed(lambda: self.floor.complete_with_record(tx_id))
        if record:
            self._record("floor2tx_ms", put_ms + put_item_ms + transaction_ms)
            self._record("dynamodb_transaction_ms", transaction_ms)
            self._record("floor_ms", put_ms + put_item_ms)
            self._record("floor_cpu_ms", floor_cpu_ms)
            self._record("floor2_ms", put_ms + put_item_ms + complete_ms)
            self._record("floor2_cpu_ms", floor2_cpu_ms)
            self._record("dynamodb_update_item_ms", complete_ms)
            self._record("floor_provider_put_ms", put_ms)
            self._record("dynamodb_put_item_ms", put_item_ms)
            self._record("dynamodb_get_item_ms", get_item_ms)

    def connections(self, sandbox: SandboxControl, requests: int) -> dict[str, int]:
        sandbox.reset_stats()
        for _ in range(requests):
            self._handle(self.workload.next(), replayed=False, record=False)
        return sandbox.stats()


def main() -> int:
    result_path = sys.argv[1]
    spec = json.load(sys.stdin)
    started = time.perf_counter()
    container = Container(spec)
    per_iteration = PROVIDER_CALLS["peer" if container.peer else "relay"]
    with SandboxControl(spec["provider_url"]) as sandbox:
        sandbox.clear_faults()
        for _ in range(spec["warmup"]):
            container.iteration(record=False)
        block = spec["block"]
        for done in range(0, spec["iterations"], block):
            size = min(block, spec["iterations"] - done)
            sandbox.reset_stats()
            sandbox.delay(spec["delay_ms"], times=per_iteration * size)
            for _ in range(size):
                container.iteration(record=True)
            calls = sandbox.stats()["requests"]
            if calls != per_iteration * size or sandbox.pending_faults() != 0:
                raise RuntimeError(f"the provider saw {calls} calls, not the block's {per_iteration * size}")
        stats = container.connections(sandbox, spec["connection_requests"])
    with open(result_path, "w", encoding="utf-8") as out:  # noqa: PTH123
        json.dump(
            {
                "samples": container.samples,
                "dynamodb_operations": container.operations,
                "connections": stats,
                "seconds": time.perf_counter() - started,
            },
            out,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
