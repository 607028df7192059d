"""`python -m bench`: start the local stack, measure, judge the budgets, write .local/bench/results.json.

bench/results.json is the reference copy: the run the docs' figures come from (docs/performance.md,
`python -m bench --markdown`). Copy a run there only together with new figures in the docs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import artifacts, attribution, cold, lambda_env, layer, queueing, report, stats, warm
from bench.budgets import derive, judge
from local.stack import Stack, start_stack
from local.template import REPO_ROOT

RESULTS_PATH = REPO_ROOT / ".local" / "bench" / "results.json"  # each run (ignored by git)
# `--only PART` runs write beside it, so a part's run never replaces a whole run's figures.
PART_RESULTS_PATH = REPO_ROOT / ".local" / "bench" / "results-{part}.json"
# Parts runnable alone: `python -m bench --only queue` (bench.queueing), `--only peer` (the peer's
# cold starts and warm requests, bench/peer/). Only a queue part merges into a whole run: the peer's
# budgets are ratios against the relay, which must come from the same run.
PARTS = ("queue", "peer")
MERGEABLE_PARTS = ("queue",)
REFERENCE_PATH = Path(__file__).resolve().parent / "results.json"  # the docs' run
COLD_START_RUNS = 21
STAGE_RUNS = 5
WARM_ITERATIONS = 400
WARM_WARMUP = 50
WARM_BLOCK = 100  # provider delays are armed per block (the sandbox allows at most 1000 at once)
PROVIDER_DELAY_MS = 20
CONNECTION_REQUESTS = 100
MODES = {mode.name: mode for mode in cold.MODES}
# BENCH_QUICK=1 (or --quick): a run small enough to check that every part works, on a shared machine.
# Its figures are labelled quick in the tables; the budgets' verdicts need a full run.
QUICK_ENV = "BENCH_QUICK"
QUICK = {
    "runs": 3,
    "iterations": 40,
    "warmup": 10,
    "stage_runs": 1,
    "emulator_warmup_rounds": 60,
    "queue_iterations": 20,
    "queue_warmup": 5,
}


def _git_commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH, as make does
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _loadavg() -> str:
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def _median_of(samples: list[dict[str, Any]], key: str) -> float:
    return stats.median([sample[key] for sample in samples])


def summarise_cold(samples: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    relay, floor, traced = samples["relay"], samples["floor"], samples["relay_traced"]
    out: dict[str, Any] = {
        "cold_start_ms": _median_of(relay, "cold_start_ms"),
        "cold_start_floor_ms": _median_of(floor, "cold_start_ms"),
        "cold_start_floor_steps_ms": {
            step: stats.median([s["steps_ms"][step] for s in floor]) for step in floor[0]["steps_ms"]
        },
        "init_ms": _median_of(relay, "init_ms"),
        "cold_start_first_request_ms": _median_of(relay, "first_request_ms"),
        "cold_start_gc_init_ms": stats.median([s["gc_init"]["ms"] for s in relay]),
        "cold_start_gc_init_collections": stats.median([s["gc_init"]["collections"] for s in relay]),
        "cold_start_modules_loaded": stats.median([s["modules_loaded"] for s in relay]),
        "cold_start_traced_ms": _median_of(traced, "cold_start_ms"),
        "init_traced_ms": _median_of(traced, "init_ms"),
        "cold_start_venv_ms": _median_of(samples["relay_venv"], "cold_start_ms"),
        "init_venv_ms": _median_of(samples["relay_venv"], "init_ms"),
        "cold_start_tracer_active": not relay[0]["tracer_disabled"],
        "cold_start_traced_tracer_active": not traced[0]["tracer_disabled"],
        "cold_start_traced_xray_datagrams": stats.median([s["xray_datagrams"] for s in traced]),
        "cold_start_stderr_lines": sum(len(s["stderr_lines"]) for runs in samples.values() for s in runs),
        # [min, max] of each kind: this machine is shared, so medians are the figures, mins a hint
        "cold_start_spread_ms": {
            name: [round(min(s["cold_start_ms"] for s in runs)), round(max(s["cold_start_ms"] for s in runs))]
            for name, runs in samples.items()
        },
    }
    out["cold_start_ratio"] = out["cold_start_ms"] / out["cold_start_floor_ms"]
    out["cold_start_traced_ratio"] = out["cold_start_traced_ms"] / out["cold_start_floor_ms"]
    deployed, nopyc, floor2 = samples["deployed"], samples["deployed_nopyc"], samples["deployed_floor"]
    out |= {
        "cold_start_deployed_ms": _median_of(deployed, "cold_start_ms"),
        "cold_start_deployed_nopyc_ms": _median_of(nopyc, "cold_start_ms"),
        "cold_start_deployed_floor_ms": _median_of(floor2, "cold_start_ms"),
        "cold_start_deployed_traced_ms": _median_of(samples["deployed_traced"], "cold_start_ms"),
        "init_deployed_ms": _median_of(deployed, "init_ms"),
        "init_deployed_nopyc_ms": _median_of(nopyc, "init_ms"),
        "cold_start_deployed_first_request_ms": _median_of(deployed, "first_request_ms"),
        "cold_start_deployed_floor_steps_ms": {
            step: stats.median([s["steps_ms"][step] for s in floor2]) for step in floor2[0]["steps_ms"]
        },
    }
    out["cold_start_deployed_ratio"] = out["cold_start_deployed_ms"] / out["cold_start_deployed_floor_ms"]
    out["cold_start_deployed_nopyc_ratio"] = (
        out["cold_start_deployed_nopyc_ms"] / out["cold_start_deployed_floor_ms"]
    )
    return out


def summarise_peer_cold(peer: list[dict[str, Any]]) -> dict[str, Any]:
    """The peer's cold starts (bench/peer/, from its artifacts on the same layer)."""
    return {
        "cold_start_peer_ms": _median_of(peer, "cold_start_ms"),
        "init_peer_ms": _median_of(peer, "init_ms"),
        "cold_start_peer_first_request_ms": _median_of(peer, "first_request_ms"),
        "cold_start_peer_modules_loaded": stats.median([s["modules_loaded"] for s in peer]),
        "cold_start_peer_spread_ms": [
            round(min(s["cold_start_ms"] for s in peer)),
            round(max(s["cold_start_ms"] for s in peer)),
        ],
    }


def summarise_stages(runs: list[dict[str, Any]]) -> dict[str, Any]:
    steps: dict[str, Any] = {}
    for step in runs[0]["steps"]:
        name = step["step"]
        same = [next(s for s in run["steps"] if s["step"] == name) for run in runs]
        steps[name] = {
            "ms": stats.median([s["ms"] for s in same]),
            "gc_ms": stats.median([s["gc"]["ms"] for s in same]),
            "modules": step["modules"],
        }
    calls = {
        name: stats.median([run["app_body_calls_ms"].get(name, 0.0) for run in runs])
        for name in runs[0]["app_body_calls_ms"]
    }
    return {"steps": steps, "calls": dict(sorted(calls.items(), key=lambda item: -item[1]))}


def summarise_warm(result: dict[str, Any]) -> dict[str, Any]:
    samples = result["samples"]
    new, floor, replay = (stats.summary(samples[key]) for key in ("new_ms", "floor_ms", "replay_ms"))
    put_item = stats.summary(samples["dynamodb_put_item_ms"])
    connections = result["connections"]
    if connections["requests"] != CONNECTION_REQUESTS:
        raise RuntimeError(f"the provider saw {connections['requests']} of {CONNECTION_REQUESTS} requests")
    out: dict[str, Any] = {
        "warm_new_p50_ms": new["p50"],
        "warm_new_p99_ms": new["p99"],
        "warm_new_floor_p50_ms": floor["p50"],
        "warm_new_floor_p99_ms": floor["p99"],
        "warm_floor_provider_put_p50_ms": stats.median(samples["floor_provider_put_ms"]),
        "replay_p50_ms": replay["p50"],
        "replay_p99_ms": replay["p99"],
        "ddb_roundtrip_p50_ms": put_item["p50"],
        "ddb_getitem_p50_ms": stats.median(samples["dynamodb_get_item_ms"]),
        "handler_cpu_new_ms": stats.median(samples["new_cpu_ms"]),
        "handler_cpu_replay_ms": stats.median(samples["replay_cpu_ms"]),
        "handler_cpu_new_p99_ms": stats.percentile(samples["new_cpu_ms"], 99),
        "warm_floor_cpu_ms": stats.median(samples["floor_cpu_ms"]),
        "ddb_calls_new": stats.single(samples["new_dynamodb_calls"], "DynamoDB calls of a new reschedule"),
        "ddb_calls_replay": stats.single(samples["replay_dynamodb_calls"], "DynamoDB calls of a replay"),
        "ddb_operations_new": stats.single(result["dynamodb_operations"]["new"], "DynamoDB operations"),
        "ddb_operations_replay": stats.single(result["dynamodb_operations"]["replay"], "DynamoDB operations"),
        "secrets_calls_warm": sum(samples["secrets_calls"]) / len(samples["secrets_calls"]),
        "connections_per_100": connections["connections"],
        "warm_seconds": result["seconds"],
    }
    floor2 = stats.summary(samples["floor2_ms"])
    out |= {
        "warm_new_floor2_p50_ms": floor2["p50"],
        "warm_new_floor2_p99_ms": floor2["p99"],
        "ddb_update_item_p50_ms": stats.median(samples["dynamodb_update_item_ms"]),
        "handler_cpu_floor_ms": stats.median(samples["floor2_cpu_ms"]),
    }
    out["warm_new_p50_ratio"] = out["warm_new_p50_ms"] / out["warm_new_floor_p50_ms"]
    out["warm_new_floor2_ratio"] = out["warm_new_p50_ms"] / out["warm_new_floor2_p50_ms"]
    # For reference: floor2 with its second round trip as the transaction that also stores the record.
    out["warm_new_floor2tx_p50_ms"] = stats.summary(samples["floor2tx_ms"])["p50"]
    out["warm_new_floor2tx_ratio"] = out["warm_new_p50_ms"] / out["warm_new_floor2tx_p50_ms"]
    out["dynamodb_transaction_p50_ms"] = stats.summary(samples["dynamodb_transaction_ms"])["p50"]
    out["handler_cpu_ratio"] = out["handler_cpu_new_ms"] / out["handler_cpu_floor_ms"]
    out["replay_over_ddb_ms"] = out["replay_p50_ms"] - out["ddb_roundtrip_p50_ms"]
    return out


def summarise_peer_warm(result: dict[str, Any]) -> dict[str, Any]:
    """The peer's warm container (bench.container with the peer): new reschedules and their replays."""
    samples = result["samples"]
    new, replay = stats.summary(samples["new_ms"]), stats.summary(samples["replay_ms"])
    connections = result["connections"]
    if connections["requests"] != CONNECTION_REQUESTS:
        raise RuntimeError(f"the provider saw {connections['requests']} of {CONNECTION_REQUESTS} requests")
    return {
        "warm_peer_new_p50_ms": new["p50"],
        "warm_peer_new_p99_ms": new["p99"],
        "warm_peer_replay_p50_ms": replay["p50"],
        "handler_cpu_peer_new_ms": stats.median(samples["new_cpu_ms"]),
        "handler_cpu_peer_replay_ms": stats.median(samples["replay_cpu_ms"]),
        "ddb_calls_peer_new": stats.single(samples["new_dynamodb_calls"], "DynamoDB calls of the peer's new"),
        "ddb_calls_peer_replay": stats.single(
            samples["replay_dynamodb_calls"], "DynamoDB calls of the peer's replay"
        ),
        "ddb_operations_peer_new": stats.single(result["dynamodb_operations"]["new"], "DynamoDB operations"),
        "connections_peer_per_100": connections["connections"],
        "warm_peer_seconds": result["seconds"],
    }


def _meta() -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _git_commit(),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs ({_cpu_model()}), {platform.system()}",
        "lambda_target": "python3.13 arm64 (figures here are from this machine, not Lambda)",
        "loadavg_start": _loadavg(),
    }


def _queue_meta(*, quick: bool) -> dict[str, Any]:
    return {
        "queue_iterations": QUICK["queue_iterations"] if quick else queueing.QUEUE_ITERATIONS,
        "queue_warmup": QUICK["queue_warmup"] if quick else queueing.QUEUE_WARMUP,
        "recovery_requests": queueing.RECOVERY_REQUESTS,
        "paced_burst": queueing.PACED_BURST,
        "paced_account": f"{queueing.PACED_PROVIDER} {queueing.PACED_ACCOUNT}",
    }


def _warm(stack: Stack, *, iterations: int, warmup: int, peer: Path | None = None) -> dict[str, Any]:
    return warm.run_container(
        stack,
        iterations=iterations,
        warmup=warmup,
        block=WARM_BLOCK,
        delay_ms=PROVIDER_DELAY_MS,
        connection_requests=CONNECTION_REQUESTS,
        peer=peer,
    )


def _measure_peer(*, runs: int, iterations: int, warmup: int, quick: bool) -> dict[str, Any]:
    """The peer's own measurement path: its cold starts and its warm container, nothing of the relay's."""
    peer = artifacts.prepare_peer()
    layouts = cold.Layouts(site=None, deployed={"peer": peer})
    rounds = QUICK["emulator_warmup_rounds"] if quick else cold.EMULATOR_WARMUP_ROUNDS
    print("bench: starting the local stack...", flush=True)
    with start_stack(api_port=None) as stack:
        print(f"bench: warming the emulators ({rounds} rounds)...", flush=True)
        cold.warm_emulators(stack, rounds)
        print(f"bench: {runs} cold starts of the peer...", flush=True)
        results = summarise_peer_cold(cold.run_cold_starts(stack, layouts, runs, cold.PEER_MODES)["peer"])
        print(f"bench: {iterations} warm iterations of the peer...", flush=True)
        results |= summarise_peer_warm(_warm(stack, iterations=iterations, warmup=warmup, peer=peer.function))
    return results


def measure_part(part: str, *, runs: int, iterations: int, warmup: int, quick: bool) -> dict[str, Any]:
    """One part alone, on a stack of its own (`--only`)."""
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}")
    started = time.perf_counter()
    meta = _meta() | {"only": part, "quick": quick}
    if part == "queue":
        meta |= _queue_meta(quick=quick)
        print("bench: starting the local stack...", flush=True)
        with start_stack(api_port=None) as stack:
            results: dict[str, Any] = queueing.run(stack, **_queue_sizes(quick=quick))
    else:
        meta |= {"cold_start_runs": runs, "warm_iterations": iterations, "warm_warmup": warmup}
        results = _measure_peer(runs=runs, iterations=iterations, warmup=warmup, quick=quick)
    results |= derive(results)
    meta["loadavg_end"] = _loadavg()
    meta["bench_seconds"] = round(time.perf_counter() - started, 1)
    results["meta"] = meta
    results["budgets"] = judge(results)
    return results


def _queue_sizes(*, quick: bool) -> dict[str, int]:
    meta = _queue_meta(quick=quick)
    return {"iterations": meta["queue_iterations"], "warmup": meta["queue_warmup"]}


def measure(*, runs: int, iterations: int, warmup: int, quick: bool = False) -> dict[str, Any]:
    started = time.perf_counter()
    stage_runs = QUICK["stage_runs"] if quick else STAGE_RUNS
    meta: dict[str, Any] = (
        _meta()
        | {
            "quick": quick,
            "cold_start_runs": runs,
            "stage_runs": stage_runs,
            "warm_iterations": iterations,
            "warm_warmup": warmup,
            "provider_delay_ms": PROVIDER_DELAY_MS,
            "connection_requests": CONNECTION_REQUESTS,
            "lambda_memory_mb": lambda_env.FUNCTION_MEMORY_MB,
        }
        | _queue_meta(quick=quick)
    )
    print("bench: artifact sizes (tools.package)...", flush=True)
    sizes = layer.layer_sizes()
    print(
        "bench: Lambda-like packages, the artifacts as deployed and the peer's, for cold starts...",
        flush=True,
    )
    layouts = cold.Layouts(site=layer.lambda_site(), deployed=artifacts.prepare())
    meta["deployed_interpreter"] = layouts.deployed["pyc"].interpreter
    rounds = QUICK["emulator_warmup_rounds"] if quick else cold.EMULATOR_WARMUP_ROUNDS
    print("bench: starting the local stack...", flush=True)
    with start_stack(api_port=None) as stack:
        print(f"bench: warming the emulators ({rounds} rounds)...", flush=True)
        meta["emulator_warmup_seconds"] = round(cold.warm_emulators(stack, rounds), 1)
        print(f"bench: {runs} cold starts of each kind (the peer's too)...", flush=True)
        cold_samples = cold.run_cold_starts(stack, layouts, runs)
        cold_figures = summarise_cold(cold_samples) | summarise_peer_cold(cold_samples["peer"])
        print("bench: attributing init time...", flush=True)
        stages = summarise_stages(
            [cold.stage_profile(stack, layouts, MODES["relay"]) for _ in range(stage_runs)]
        )
        traced_stages = summarise_stages(
            [cold.stage_profile(stack, layouts, MODES["relay_traced"]) for _ in range(stage_runs)]
        )
        imports = attribution.attribute(cold.import_profile(stack, layouts, MODES["relay"]))
        deployed_imports = attribution.attribute(cold.import_profile(stack, layouts, MODES["deployed"]))
        nopyc_imports = attribution.attribute(cold.import_profile(stack, layouts, MODES["deployed_nopyc"]))
        print(f"bench: {iterations} warm iterations, the relay's then the peer's...", flush=True)
        warm_figures = summarise_warm(_warm(stack, iterations=iterations, warmup=warmup))
        warm_figures |= summarise_peer_warm(
            _warm(stack, iterations=iterations, warmup=warmup, peer=layouts.deployed["peer"].function)
        )
        queue_figures = queueing.run(stack, **_queue_sizes(quick=quick))
    meta["loadavg_end"] = _loadavg()
    meta["bench_seconds"] = round(time.perf_counter() - started, 1)
    results: dict[str, Any] = {
        **cold_figures,
        **warm_figures,
        **queue_figures,
        **sizes,
        "init_steps_ms": stages["steps"],
        "init_app_body_calls_ms": stages["calls"],
        "init_steps_traced_ms": traced_stages["steps"],
        "init_app_body_calls_traced_ms": traced_stages["calls"],
        "import_modules": imports["modules"],
        "import_self_ms_total": imports["total_self_ms"],
        "import_self_ms_by_family": imports["by_family_ms"],
        "import_self_ms_by_package": imports["by_package_ms"],
        "import_deployed_modules": deployed_imports["modules"],
        "import_deployed_self_ms_total": deployed_imports["total_self_ms"],
        "import_deployed_self_ms_by_family": deployed_imports["by_family_ms"],
        "import_deployed_self_ms_by_package": deployed_imports["by_package_ms"],
        "import_deployed_nopyc_self_ms_total": nopyc_imports["total_self_ms"],
        "import_deployed_nopyc_self_ms_by_family": nopyc_imports["by_family_ms"],
        "meta": meta,
    }
    results |= derive(results)
    results["budgets"] = judge(results)
    return results


def merge(whole: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    """A whole run with one part measured again: the part's figures replace its keys, its meta is
    kept under `meta.parts.<part>` (the tables say when each was measured), the budgets re-judged."""
    meta = dict(part["meta"])
    name = meta.pop("only")
    if name not in MERGEABLE_PARTS:
        raise ValueError(
            f"a {name} part does not merge: its budgets are ratios against another run's figures"
        )
    figures = {key: value for key, value in part.items() if key not in ("meta", "budgets")}
    merged = {key: value for key, value in whole.items() if key != "budgets"} | figures
    merged |= derive(merged)
    merged["meta"] = dict(whole["meta"])
    merged["meta"]["parts"] = dict(whole["meta"].get("parts", {})) | {name: meta}
    merged["budgets"] = judge(merged)
    return merged


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {key: _round(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_round(item) for item in value]
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--markdown", action="store_true", help="print the README tables from --results, no run"
    )
    parser.add_argument(
        "--results",
        type=Path,
        help=f"results file to write (default {RESULTS_PATH.relative_to(REPO_ROOT)}) or, with --markdown, "
        f"to read (default {REFERENCE_PATH.relative_to(REPO_ROOT)}, the reference run)",
    )
    parser.add_argument("--runs", type=int, default=COLD_START_RUNS, help="cold starts of each kind")
    parser.add_argument("--iterations", type=int, default=WARM_ITERATIONS, help="measured warm iterations")
    parser.add_argument("--warmup", type=int, default=WARM_WARMUP, help="warm-up iterations (not measured)")
    parser.add_argument(
        "--merge",
        type=Path,
        metavar="PART_RESULTS",
        help="put an --only run's figures into the reference run (bench/results.json), no run",
    )
    parser.add_argument(
        "--only",
        choices=PARTS,
        help="measure one part alone, into .local/bench/results-PART.json (queue: delivery and pacing; "
        "peer: the peer's cold starts and warm requests)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        default=os.environ.get(QUICK_ENV) == "1",
        help=f"small sample sizes, to check the bench works (also {QUICK_ENV}=1); the tables say quick",
    )
    args = parser.parse_args(argv)
    if args.quick:
        for knob in ("runs", "iterations", "warmup"):
            if getattr(args, knob) == parser.get_default(knob):
                setattr(args, knob, QUICK[knob])
    if args.markdown:
        print(report.markdown(json.loads((args.results or REFERENCE_PATH).read_text())))
        return 0
    if args.merge:
        target = args.results or REFERENCE_PATH
        target.write_text(
            json.dumps(merge(json.loads(target.read_text()), json.loads(args.merge.read_text())), indent=2)
            + "\n"
        )
        print(f"merged {args.merge} into {target}")
        return 0
    if args.only:
        results_path: Path = args.results or Path(str(PART_RESULTS_PATH).format(part=args.only))
        results = _round(
            measure_part(
                args.only, runs=args.runs, iterations=args.iterations, warmup=args.warmup, quick=args.quick
            )
        )
    else:
        results_path = args.results or RESULTS_PATH
        results = _round(
            measure(runs=args.runs, iterations=args.iterations, warmup=args.warmup, quick=args.quick)
        )
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(report.text_table(results))
    failed = [b["budget"] for b in results["budgets"] if not b["pass"]]
    where = results_path.relative_to(REPO_ROOT) if results_path.is_relative_to(REPO_ROOT) else results_path
    met = len(results["budgets"]) - len(failed)
    print(f"\n{met} of {len(results['budgets'])} budgets met; results in {where}")
    # The bench records budgets; it does not fail on them (the budget tests assert the call counts).
    return 0
