"""The performance budgets: one list, read by the benchmark (PASS/FAIL per run) and by the budget
tests (tests/integration/test_budgets.py), which assert the deterministic ones (call counts).

Retired by issue 20: "warm <= 1.1x floor2" (floor2 ignored the transaction a stored record needs;
the warm budget is now against the peer) and "202 <= 1.2x a sync replay" (three writes against one
read; the 202 is now judged against its own floor). Both figures are still reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Issue 20: ratios against the peer (bench/peer/: the same job the way Powertools' docs teach it)
# and against floors, every one measured in the same run.
COLD_START_MAX_PEER_RATIO = 0.7  # cold start as deployed / the peer's, both from their artifacts
COLD_START_MAX_RATIO = 1.4  # cold start as deployed / its floor, measured the same way
WARM_NEW_MAX_PEER_RATIO = 0.9  # warm new reschedule p50 / the peer's (2 DynamoDB round trips to its 3)
HANDLER_CPU_MAX_RATIO = 1.3  # handler CPU per new reschedule / floor2's CPU (provider PUT + 2 DynamoDB calls)
REPLAY_MAX_MS_OVER_DYNAMODB = 2.0  # replay p50 minus one DynamoDB round trip's p50
MAX_DYNAMODB_CALLS_NEW = 2
DYNAMODB_CALLS_REPLAY = 1
MAX_SECRETS_CALLS_WARM = 0  # one warm request, while the cached token and registry are fresh
# Over a long warm run: the registry is re-read once per REGISTRY_MAX_AGE_SECONDS (30 s) per container,
# the price of a revocation reaching every container within 60 s (issue 22); about 0.001 per request.
MAX_SECRETS_CALLS_PER_WARM_REQUEST = 0.01
MAX_CONNECTIONS_PER_PROVIDER = 1  # per container, across many requests
MAX_LAYER_UNZIPPED_MIB = 30.0  # with bytecode (Lambda allows 250 MiB for function and layers)
# Durable delivery (issue 12) and pacing (issue 13).
QUEUE_ACCEPT_MAX_FLOOR_RATIO = 1.2  # the 202's p50 / its floor's (SendMessage + one conditional PutItem)
MAX_ROUND_TRIPS_QUEUED = 2  # the order's SendMessage and one DynamoDB write
SQS_CALLS_QUEUED = 1  # SendMessage, once per queued request
SQS_CALLS_SYNC = 0  # a sync success never touches the queue (a source without a callback)
# Read the record, the account's circuit, lock it, the send guard (so a cancel wins), the outcome with
# the key (one transaction).
MAX_DYNAMODB_CALLS_DELIVERY = 5
MAX_DYNAMODB_CALLS_PACED_DELIVERY = 6  # the same and one bucket take: "one extra call per provider call"
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
    Budget("Cold start as deployed vs the peer's", "cold_start_peer_ratio", COLD_START_MAX_PEER_RATIO, "x"),
    Budget("Cold start as deployed vs its floor", "cold_start_deployed_ratio", COLD_START_MAX_RATIO, "x"),
    Budget("Warm new reschedule p50 vs the peer's", "warm_new_peer_ratio", WARM_NEW_MAX_PEER_RATIO, "x"),
    Budget("Handler CPU per new reschedule vs floor2's", "handler_cpu_ratio", HANDLER_CPU_MAX_RATIO, "x"),
    Budget(
        "Replay p50 above one DynamoDB round trip", "replay_over_ddb_ms", REPLAY_MAX_MS_OVER_DYNAMODB, " ms"
    ),
    Budget("DynamoDB round trips, new reschedule", "ddb_calls_new", MAX_DYNAMODB_CALLS_NEW),
    Budget("DynamoDB round trips, replay", "ddb_calls_replay", DYNAMODB_CALLS_REPLAY),
    Budget(
        "Secrets Manager calls per warm request", "secrets_calls_warm", MAX_SECRETS_CALLS_PER_WARM_REQUEST
    ),
    Budget("TCP connections per provider per container", "connections_per_100", MAX_CONNECTIONS_PER_PROVIDER),
    Budget("Layer size, unzipped", "layer_unzipped_mib", MAX_LAYER_UNZIPPED_MIB, " MiB"),
    Budget("Round trips per queued 202 (SQS + DynamoDB)", "round_trips_queued", MAX_ROUND_TRIPS_QUEUED),
    Budget("Queued 202 p50 vs its floor's", "queue_accept_floor_ratio", QUEUE_ACCEPT_MAX_FLOOR_RATIO, "x"),
    Budget("SQS calls per queued request", "sqs_calls_queued", SQS_CALLS_QUEUED),
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


# (ratio key, numerator, denominator): ratios between figures that more than one part measures; each
# is derived only when both are in the results, so always from the same run (bench.run).
DERIVED_RATIOS = (
    ("cold_start_peer_ratio", "cold_start_deployed_ms", "cold_start_peer_ms"),
    ("warm_new_peer_ratio", "warm_new_p50_ms", "warm_peer_new_p50_ms"),
    ("handler_cpu_peer_ratio", "handler_cpu_new_ms", "handler_cpu_peer_new_ms"),
)


def derive(results: dict[str, Any]) -> dict[str, Any]:
    """The figures computed from other figures: the ratios against the peer, and the round trips of a
    queued request (its SQS and DynamoDB calls together); only those whose inputs are present."""
    derived: dict[str, Any] = {
        key: results[numerator] / results[denominator]
        for key, numerator, denominator in DERIVED_RATIOS
        if numerator in results and denominator in results
    }
    if "sqs_calls_queued" in results and "ddb_calls_queued" in results:
        derived["round_trips_queued"] = results["sqs_calls_queued"] + results["ddb_calls_queued"]
    return derived


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
