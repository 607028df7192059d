"""The budgets' arithmetic (issue 20): ratios against the peer and the floors, the 202's round trips,
the retired budgets, and the Lambda environment the bench runs in (template.yaml's)."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from bench import budgets, lambda_env, prices, report
from bench.budgets import BUDGETS, derive, judge
from bench.run import merge, summarise_peer_cold, summarise_peer_warm
from local.template import TEMPLATE_PATH, function_memory_mb, load_template


def _verdicts(results: dict[str, Any]) -> dict[str, bool]:
    return {entry["figure"]: entry["pass"] for entry in judge(results)}


def _figures(**overrides: float) -> dict[str, Any]:
    """A run's figures, each budget met with a margin, before `overrides`."""
    figures: dict[str, Any] = {
        "cold_start_deployed_ms": 600.0,
        "cold_start_peer_ms": 1000.0,
        "cold_start_deployed_floor_ms": 500.0,
        "warm_new_p50_ms": 30.0,
        "warm_peer_new_p50_ms": 40.0,
        "handler_cpu_new_ms": 8.0,
        "handler_cpu_peer_new_ms": 12.0,
        "sqs_calls_queued": 1,
        "ddb_calls_queued": 1,
        "queue_accept_p50_ms": 20.0,
        "queue_floor_p50_ms": 18.0,
    }
    figures |= overrides
    figures["cold_start_deployed_ratio"] = (
        figures["cold_start_deployed_ms"] / figures["cold_start_deployed_floor_ms"]
    )
    figures["handler_cpu_ratio"] = figures.pop("handler_cpu_ratio", 1.0)
    figures["queue_accept_floor_ratio"] = figures["queue_accept_p50_ms"] / figures["queue_floor_p50_ms"]
    return figures | derive(figures)


def test_the_ratios_against_the_peer_are_the_relays_figure_over_the_peers() -> None:
    derived = derive(_figures())

    assert derived["cold_start_peer_ratio"] == pytest.approx(0.6)
    assert derived["warm_new_peer_ratio"] == pytest.approx(0.75)
    assert derived["handler_cpu_peer_ratio"] == pytest.approx(8 / 12)
    assert derived["round_trips_queued"] == 2


def test_a_ratio_is_derived_only_when_both_figures_are_in_the_same_results() -> None:
    # A run without the peer (or a queue part alone) judges no ratio against it.
    relay_only = {"cold_start_deployed_ms": 600.0, "warm_new_p50_ms": 30.0, "sqs_calls_queued": 1}

    assert derive(relay_only) == {}
    assert "cold_start_peer_ratio" not in {
        entry["figure"] for entry in judge(relay_only | derive(relay_only))
    }


@pytest.mark.parametrize(
    ("overrides", "figure", "passes"),
    [
        # cold start as deployed <= 0.7x the peer's
        ({"cold_start_deployed_ms": 700.0, "cold_start_peer_ms": 1000.0}, "cold_start_peer_ratio", True),
        ({"cold_start_deployed_ms": 701.0, "cold_start_peer_ms": 1000.0}, "cold_start_peer_ratio", False),
        # ... and <= 1.4x its floor
        (
            {"cold_start_deployed_ms": 700.0, "cold_start_deployed_floor_ms": 500.0},
            "cold_start_deployed_ratio",
            True,
        ),
        (
            {"cold_start_deployed_ms": 701.0, "cold_start_deployed_floor_ms": 500.0},
            "cold_start_deployed_ratio",
            False,
        ),
        # warm new reschedule p50 <= 0.9x the peer's
        ({"warm_new_p50_ms": 36.0, "warm_peer_new_p50_ms": 40.0}, "warm_new_peer_ratio", True),
        ({"warm_new_p50_ms": 36.1, "warm_peer_new_p50_ms": 40.0}, "warm_new_peer_ratio", False),
        # handler CPU <= 1.3x floor2's
        ({"handler_cpu_ratio": 1.3}, "handler_cpu_ratio", True),
        ({"handler_cpu_ratio": 1.31}, "handler_cpu_ratio", False),
        # a queued 202 in at most 2 round trips, SQS and DynamoDB together
        ({"sqs_calls_queued": 1, "ddb_calls_queued": 1}, "round_trips_queued", True),
        ({"sqs_calls_queued": 1, "ddb_calls_queued": 2}, "round_trips_queued", False),
        # ... and <= 1.2x its own floor
        ({"queue_accept_p50_ms": 24.0, "queue_floor_p50_ms": 20.0}, "queue_accept_floor_ratio", True),
        ({"queue_accept_p50_ms": 24.1, "queue_floor_p50_ms": 20.0}, "queue_accept_floor_ratio", False),
    ],
)
def test_each_budget_holds_up_to_its_limit_and_no_further(
    overrides: dict[str, float], figure: str, passes: bool
) -> None:
    assert _verdicts(_figures(**overrides))[figure] is passes


def test_the_budgets_are_the_issues_limits() -> None:
    limits = {budget.figure: budget.limit for budget in BUDGETS}

    assert limits["cold_start_peer_ratio"] == 0.7
    assert limits["cold_start_deployed_ratio"] == 1.4
    assert limits["warm_new_peer_ratio"] == 0.9
    assert limits["handler_cpu_ratio"] == 1.3
    assert limits["round_trips_queued"] == 2
    assert limits["queue_accept_floor_ratio"] == 1.2


def test_the_retired_budgets_judge_nothing_and_their_figures_stay_as_reference_rows() -> None:
    results = _figures() | {"warm_new_floor2_ratio": 5.0, "queue_accept_ratio": 5.0}

    judged = {entry["figure"] for entry in judge(results)}
    rows = {label.strip(): (limit, verdict) for label, _value, limit, verdict in report.rows(results)}

    assert "warm_new_floor2_ratio" not in judged
    assert "queue_accept_ratio" not in judged
    assert rows["new p50 / floor2 p50"] == ("", "")
    assert rows["202 p50 / sync replay p50, for reference"] == ("", "")
    assert not hasattr(budgets, "WARM_NEW_MAX_P50_RATIO")
    assert not hasattr(budgets, "QUEUE_ACCEPT_MAX_RATIO")


def _cold_sample(cold_ms: float, init_ms: float) -> dict[str, Any]:
    return {
        "cold_start_ms": cold_ms,
        "init_ms": init_ms,
        "first_request_ms": cold_ms - init_ms,
        "modules_loaded": 900,
    }


def test_the_peers_cold_start_is_the_median_of_its_runs() -> None:
    figures = summarise_peer_cold([_cold_sample(1200, 1100), _cold_sample(900, 850), _cold_sample(1000, 930)])

    assert figures["cold_start_peer_ms"] == 1000
    assert figures["init_peer_ms"] == 930
    assert figures["cold_start_peer_first_request_ms"] == 70
    assert figures["cold_start_peer_spread_ms"] == [900, 1200]


def _peer_warm(new_calls: list[int], requests: int = 100) -> dict[str, Any]:
    return {
        "samples": {
            "new_ms": [40.0, 42.0, 38.0],
            "replay_ms": [6.0, 7.0, 5.0],
            "new_cpu_ms": [12.0, 13.0, 11.0],
            "replay_cpu_ms": [4.0, 4.0, 4.0],
            "new_dynamodb_calls": new_calls,
            "replay_dynamodb_calls": [1, 1, 1],
        },
        "dynamodb_operations": {"new": ["PutItem,PutItem,UpdateItem"] * 3},
        "connections": {"requests": requests, "connections": 1},
        "seconds": 3.0,
    }


def test_the_peers_warm_figures_are_medians_and_its_counts_must_not_vary() -> None:
    figures = summarise_peer_warm(_peer_warm([3, 3, 3]))

    assert figures["warm_peer_new_p50_ms"] == 40.0
    assert figures["warm_peer_replay_p50_ms"] == 6.0
    assert figures["handler_cpu_peer_new_ms"] == 12.0
    assert figures["ddb_calls_peer_new"] == 3
    assert figures["ddb_calls_peer_replay"] == 1
    with pytest.raises(RuntimeError, match="differed"):
        summarise_peer_warm(_peer_warm([3, 4, 3]))
    with pytest.raises(RuntimeError, match="99 of 100"):
        summarise_peer_warm(_peer_warm([3, 3, 3], requests=99))


def test_a_peer_part_does_not_merge_into_another_runs_figures() -> None:
    whole = _figures() | {"meta": {"date": "d"}}
    part = {"cold_start_peer_ms": 10.0, "meta": {"only": "peer", "date": "e"}}

    with pytest.raises(ValueError, match="another run"):
        merge(whole, part)


def test_a_queue_part_merges_and_its_round_trips_are_derived_again() -> None:
    whole = _figures() | {"meta": {"date": "d"}}
    part = {"sqs_calls_queued": 1, "ddb_calls_queued": 2, "meta": {"only": "queue", "date": "e"}}

    merged = merge(whole, part)

    assert merged["round_trips_queued"] == 3
    assert {entry["figure"]: entry["pass"] for entry in merged["budgets"]}["round_trips_queued"] is False


def test_the_bench_runs_at_the_templates_memory_size() -> None:
    # Read from the template's text, apart from the parser the bench uses.
    (globals_memory,) = re.findall(
        r"^Globals:\n  Function:\n(?:    .*\n|\n)*?    MemorySize: (\d+)$", TEMPLATE_PATH.read_text(), re.M
    )
    env = lambda_env.lambda_environment({}, tracing=False, xray_daemon="127.0.0.1:2000")

    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == globals_memory
    assert int(globals_memory) == prices.FUNCTION_MEMORY_GB * 1024
    assert int(globals_memory) == lambda_env.FUNCTION_MEMORY_MB


def test_a_functions_own_memory_size_overrides_globals_and_lambdas_default_is_128() -> None:
    template = load_template(TEMPLATE_PATH)
    own = copy.deepcopy(template)
    own["Resources"]["RescheduleFunction"].setdefault("Properties", {})["MemorySize"] = 2048
    bare = copy.deepcopy(template)
    del bare["Globals"]["Function"]["MemorySize"]

    assert function_memory_mb(own) == 2048
    assert function_memory_mb(bare) == 128


def test_a_quick_run_is_labelled_quick_in_the_tables() -> None:
    meta = {
        "date": "2026-12-04T00:00:00+00:00",
        "machine": "m",
        "python": "3.13.0",
        "loadavg_start": "1.00",
        "cold_start_runs": 3,
        "warm_iterations": 40,
        "warm_warmup": 10,
    }

    assert "A quick run" in report.markdown(_figures() | {"meta": meta | {"quick": True}})
    assert "A quick run" not in report.markdown(_figures() | {"meta": meta | {"quick": False}})
