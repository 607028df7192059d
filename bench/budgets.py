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


@dataclass(frozen=True)
class Budget:
    name: str
    figure: str  # the results.json key it judges
    limit: float
    unit: str = ""

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
    ]
