"""bench/results.json is the reference run: docs/performance.md's figures are exactly its tables."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from bench import prices, report
from bench.budgets import BUDGETS, judge
from bench.run import REFERENCE_PATH, RESULTS_PATH, merge

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs" / "performance.md"
# The figures issue 11 asks of every run, beside the older ones.
ISSUE_11_KEYS = {
    "cold_start_deployed_ms",
    "cold_start_deployed_nopyc_ms",
    "cold_start_deployed_floor_ms",
    "cold_start_deployed_ratio",
    "warm_new_floor2_p50_ms",
    "warm_new_floor2_ratio",
    "handler_cpu_floor_ms",
    "handler_cpu_ratio",
    "layer_unzipped_mib",
    "function_unzipped_mib",
}
# Issue 20: the peer (bench/peer/) in the same run, and the 202's own floor.
ISSUE_20_KEYS = {
    "cold_start_peer_ms",
    "cold_start_peer_ratio",
    "warm_peer_new_p50_ms",
    "warm_new_peer_ratio",
    "handler_cpu_peer_new_ms",
    "ddb_calls_peer_new",
    "round_trips_queued",
    "queue_floor_p50_ms",
    "queue_accept_floor_ratio",
}
# Durable delivery (issue 12 §6) and pacing (issue 13 §4): `python -m bench --only queue`.
QUEUE_KEYS = {
    "queue_accept_p50_ms",
    "queue_sync_replay_p50_ms",
    "queue_accept_ratio",
    "sqs_calls_queued",
    "ddb_calls_queued",
    "sqs_calls_sync_new",
    "ddb_calls_sync_new",
    "ddb_calls_delivery",
    "ddb_calls_paced_delivery",
    "paced_completion_ratio",
    "paced_ideal_s",
    "paced_429s",
    "recovery_p50_s",
    "recovery_max_s",
}
OLDER_KEYS = {
    "cold_start_ms",
    "cold_start_floor_ms",
    "cold_start_ratio",
    "warm_new_p50_ratio",
    "replay_p50_ms",
}


@pytest.fixture(scope="module")
def reference() -> dict[str, object]:
    loaded: dict[str, object] = json.loads(REFERENCE_PATH.read_text())
    return loaded


def test_the_docs_show_exactly_the_reference_runs_tables(reference: dict[str, object]) -> None:
    (block,) = re.findall(r"<!-- bench:begin -->\n(.*?)\n<!-- bench:end -->", DOCS.read_text(), re.DOTALL)

    assert block == report.markdown(reference)


def test_the_reference_run_has_every_figure_and_its_budgets(reference: dict[str, object]) -> None:
    assert set(reference) >= ISSUE_11_KEYS | ISSUE_20_KEYS | QUEUE_KEYS | OLDER_KEYS
    assert reference["budgets"] == judge(reference)
    assert {budget.figure for budget in BUDGETS} <= set(reference)


def test_runs_write_outside_the_repository_files() -> None:
    # `make bench` leaves git status clean: its results go to the ignored .local/.
    assert RESULTS_PATH.is_relative_to(REPO / ".local")
    assert REFERENCE_PATH == REPO / "bench" / "results.json"


def test_cost_per_million_bills_whole_milliseconds_at_the_function_memory() -> None:
    # 20.1 ms is billed as 21 ms at 1 GB: 1e6 * 0.021 s * $0.0000133334 + $0.20 requests.
    assert prices.per_million(20.1, memory_gb=1.0) == pytest.approx(0.20 + 0.021 * 13.3334)
    assert prices.per_million(20.0) < prices.per_million(20.1)
    # SnapStart at 1 GB: $0.0001397998 per restore, ~$3.90 per month of cache.
    assert prices.snapstart_restores_per_million(1.0) == pytest.approx(139.7998)
    assert prices.snapstart_cache_per_month(1.0) == pytest.approx(3.90, abs=0.01)
    # By default at the function's memory (template.yaml's): twice the memory, twice the duration cost.
    duration_cost = prices.per_million(20.1) - prices.LAMBDA_PER_MILLION_REQUESTS
    assert duration_cost == pytest.approx(0.021 * 13.3334 * prices.FUNCTION_MEMORY_GB)


def test_the_reference_counts_are_the_queue_budgets_exact_figures(reference: dict[str, object]) -> None:
    # "Exactly 1" SQS call per queued request, none on a sync success; a paced delivery is one call more.
    assert reference["sqs_calls_queued"] == 1
    assert reference["sqs_calls_sync_new"] == 0
    assert reference["ddb_calls_sync_new"] == 2
    assert reference["ddb_calls_paced_delivery"] == reference["ddb_calls_delivery"] + 1  # type: ignore[operator]
    requests, rate = reference["paced_requests"], reference["paced_rate_per_minute"]
    assert reference["paced_ideal_s"] == pytest.approx((requests - 1) * 60 / rate, abs=0.001)  # type: ignore[operator]


def test_a_part_run_is_judged_on_its_figures_and_merges_into_a_whole_run(
    reference: dict[str, object],
) -> None:
    whole = {key: value for key, value in reference.items() if key not in QUEUE_KEYS}
    part: dict[str, Any] = {
        "queue_accept_floor_ratio": 9.0,
        "paced_429s": 0,
        "meta": {"only": "queue", "date": "d"},
    }
    budgets = judge(part)
    part["budgets"] = budgets

    assert [b["figure"] for b in budgets] == ["queue_accept_floor_ratio", "paced_429s"]
    merged = merge(whole, part)
    assert merged["queue_accept_floor_ratio"] == 9.0
    assert merged["meta"]["parts"]["queue"] == {"date": "d"}
    assert merged["budgets"] == judge(merged)
    assert {b["figure"]: b["pass"] for b in merged["budgets"]}["queue_accept_floor_ratio"] is False
