"""The performance budgets: one list, read by the benchmark (PASS/FAIL per run) and by the budget
tests (tests/integration/test_budgets.py), which assert the deterministic ones (call counts)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

COLD_START_MAX_RATIO = 1.5  # cold start as deployed / its floor, measured the same way
WARM_NEW_MAX_P50_RATIO = 1.1  # warm new reschedule p50 / its floor's p50 (provider PUT + 2 DynamoDB trips)
HANDLER_CPU_MAX_RATIO = 2.0  # handler CPU per new reschedule / that floor's CPU
REPLAY_MAX_MS_OVER_DYNAMODB = 2.0  # replay p50 minus one DynamoDB round trip's p50
MAX_DYNAMODB_CALLS_NEW = 2
DYNAMODB_CALLS_REPLAY = 1
MAX_SECRETS_CALLS_WARM = 0  # while the cached token is fresh
MAX_CONNECTIONS_PER_PROVIDER = 1  # per container, across many requests
MAX_LAYER_UNZIPPED_MIB = 30.0  # with bytecode (Lambda allows 250 MiB for function and layers)
# Durable delivery (issue 12) and pacing (issue 13).
QUEUE_ACCEPT_MAX_RATIO = 1.2  # the 202's p50 / a sync replay's p50, same run
SQS_CALLS_QUEUED = 1  # SendMessage, once per queued request
SQS_CALLS_SYNC = 0  # a sync success never touches the queue (a source without a callback)
MAX_DYNAMODB_CALLS_QUEUED = 2  # the lock, then the key's completion with the queued record
MAX_DYNAMODB_CALLS_DELIVERY = 3  # read the record, lock it, the outcome with the key (one transaction)
MAX_DYNAMODB_CALLS_PACED_DELIVERY = 4  # the same and one bucket take: "one extra call per provider call"
PACED_MAX_COMPLETION_RATIO = 1.1  # a queued burst's delivery / (N - 1) * 60 / rate
PACED_MAX_429S = 0  # the provider never refuses a paced account's call


@dataclass(frozen=True)
class Budget:
    name: str
    figure: str  # the results.json key it judges
    limit: float
    unit: str = ""

    def applies(self, results: dict[str, Any]) -> bool:
        """Whether this run measured the figure (`--only` runs measure a part)."""
        return self.figure in results

    def passes(self, results: dict[str, Any]) -> bool:
        return bool(results[self.figure] <= self.limit)

    def describe(self) -> str:
        return f"<= {self.limit:g}{self.unit}"


BUDGETS = (
    Budget("Cold start as deployed vs its floor", "cold_start_deployed_ratio", COLD_START_MAX_RATIO, "x"),
    Budget("Warm new reschedule p50 vs its floor", "warm_new_floor2_ratio", WARM_NEW_MAX_P50_RATIO, "x"),
    Budget("Handler CPU per new reschedule vs its floor", "handler_cpu_ratio", HANDLER_CPU_MAX_RATIO, "x"),
    Budget(
        "Replay p50 above one DynamoDB round trip", "replay_over_ddb_ms", REPLAY_MAX_MS_OVER_DYNAMODB, " ms"
    ),
    Budget("DynamoDB round trips, new reschedule", "ddb_calls_new", MAX_DYNAMODB_CALLS_NEW),
    Budget("DynamoDB round trips, replay", "ddb_calls_replay", DYNAMODB_CALLS_REPLAY),
    Budget("Secrets Manager calls per warm request", "secrets_calls_warm", MAX_SECRETS_CALLS_WARM),
    Budget("TCP connections per provider per container", "connections_per_100", MAX_CONNECTIONS_PER_PROVIDER),
    Budget("Layer size, unzipped", "layer_unzipped_mib", MAX_LAYER_UNZIPPED_MIB, " MiB"),
    Budget("Queued 202 p50 vs a sync replay's p50", "queue_accept_ratio", QUEUE_ACCEPT_MAX_RATIO, "x"),
    Budget("SQS calls per queued request", "sqs_calls_queued", SQS_CALLS_QUEUED),
    Budget("DynamoDB round trips, queued request", "ddb_calls_queued", MAX_DYNAMODB_CALLS_QUEUED),
    Budget("SQS calls per sync success", "sqs_calls_sync_new", SQS_CALLS_SYNC),
    Budget(
        "DynamoDB round trips, sync success (queue configured)", "ddb_calls_sync_new", MAX_DYNAMODB_CALLS_NEW
    ),
    Budget("DynamoDB calls per delivery, unpaced", "ddb_calls_delivery", MAX_DYNAMODB_CALLS_DELIVERY),
    Budget(
        "DynamoDB calls per delivery, paced", "ddb_calls_paced_delivery", MAX_DYNAMODB_CALLS_PACED_DELIVERY
    ),
    Budget(
        "Paced burst: delivery vs the rate's ideal", "paced_completion_ratio", PACED_MAX_COMPLETION_RATIO, "x"
    ),
    Budget("Paced burst: 429s from the provider", "paced_429s", PACED_MAX_429S),
)


def judge(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "budget": budget.name,
            "figure": budget.figure,
            "value": results[budget.figure],
            "limit": budget.describe(),
            "pass": budget.passes(results),
        }
        for budget in BUDGETS
        if budget.applies(results)
    ]
