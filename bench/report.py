"""The results as a table: plain text for `make bench`, Markdown for docs/performance.md (`--markdown`)."""

from __future__ import annotations

from typing import Any

from bench import prices
from bench.budgets import BUDGETS

# (results key, label, format); every figure in the table, budgets marked where they apply.
FIGURES = (
    (
        "cold_start_deployed_ms",
        "Cold start as deployed: artifacts with bytecode, read-only, CPython 3.13 (median)",
        "{:.0f} ms",
    ),
    (
        "cold_start_peer_ms",
        "  the peer as deployed (Powertools' docs way: resolver, idempotency, parameters; same layer)",
        "{:.0f} ms",
    ),
    ("cold_start_peer_ratio", "  as deployed / the peer", "{:.2f}x"),
    ("init_peer_ms", "  the peer's init alone (import app)", "{:.0f} ms"),
    ("cold_start_peer_first_request_ms", "  the peer's first request alone", "{:.0f} ms"),
    ("cold_start_deployed_nopyc_ms", "  the same artifacts without bytecode (as before)", "{:.0f} ms"),
    (
        "cold_start_deployed_floor_ms",
        "  floor, same method: boto3, 2 clients, 1 secret, 1 PutItem, 1 urllib3 PUT",
        "{:.0f} ms",
    ),
    ("cold_start_deployed_ratio", "  as deployed / floor", "{:.2f}x"),
    ("cold_start_deployed_nopyc_ratio", "  without bytecode / floor", "{:.2f}x"),
    ("init_deployed_ms", "  init alone (import app), with bytecode", "{:.0f} ms"),
    ("init_deployed_nopyc_ms", "  init alone, without bytecode", "{:.0f} ms"),
    ("cold_start_deployed_first_request_ms", "  first request alone", "{:.0f} ms"),
    ("cold_start_deployed_traced_ms", "  as deployed with the Tracer active", "{:.0f} ms"),
    ("cold_start_ms", "Cold start, Lambda-like site (dev interpreter, cached bytecode)", "{:.0f} ms"),
    (
        "cold_start_floor_ms",
        "  floor: import boto3, 2 clients, 1 secret, 1 PutItem, 1 urllib3 PUT",
        "{:.0f} ms",
    ),
    ("cold_start_ratio", "  cold start / floor", "{:.2f}x"),
    ("init_ms", "  init alone (import app)", "{:.0f} ms"),
    ("cold_start_first_request_ms", "  first request alone", "{:.0f} ms"),
    ("cold_start_gc_init_ms", "  garbage collection during init", "{:.0f} ms"),
    ("cold_start_traced_ms", "Cold start with the Tracer active (as deployed)", "{:.0f} ms"),
    ("cold_start_traced_ratio", "  traced cold start / floor", "{:.2f}x"),
    ("init_traced_ms", "  init alone, Tracer active", "{:.0f} ms"),
    ("cold_start_venv_ms", "Cold start in the dev virtualenv (not Lambda-like)", "{:.0f} ms"),
    ("warm_new_p50_ms", "Warm new reschedule p50 (provider delay 20 ms)", "{:.1f} ms"),
    ("warm_new_p99_ms", "Warm new reschedule p99", "{:.1f} ms"),
    ("warm_peer_new_p50_ms", "  the peer's new reschedule p50 (3 DynamoDB round trips)", "{:.1f} ms"),
    ("warm_peer_new_p99_ms", "  the peer's new reschedule p99", "{:.1f} ms"),
    ("warm_new_peer_ratio", "  new p50 / the peer's p50", "{:.2f}x"),
    ("warm_new_floor_p50_ms", "  floor p50: urllib3 PUT + 1 PutItem", "{:.1f} ms"),
    ("warm_new_floor_p99_ms", "  floor p99", "{:.1f} ms"),
    ("warm_new_p50_ratio", "  new p50 / floor p50", "{:.2f}x"),
    (
        "warm_new_floor2_p50_ms",
        "  floor2 p50: urllib3 PUT + PutItem + UpdateItem (lock, complete)",
        "{:.1f} ms",
    ),
    ("warm_new_floor2_ratio", "  new p50 / floor2 p50", "{:.2f}x"),
    (
        "warm_new_floor2tx_p50_ms",
        "  floor2 with a transaction (lock completed + record put), for reference",
        "{:.1f} ms",
    ),
    ("warm_new_floor2tx_ratio", "  new p50 / floor2-with-transaction p50", "{:.2f}x"),
    ("dynamodb_transaction_p50_ms", "  TransactWriteItems p50 (update + put), for reference", "{:.1f} ms"),
    ("replay_p50_ms", "Replay p50", "{:.1f} ms"),
    ("replay_p99_ms", "Replay p99", "{:.1f} ms"),
    ("ddb_roundtrip_p50_ms", "  one DynamoDB round trip p50 (PutItem)", "{:.1f} ms"),
    ("replay_over_ddb_ms", "  replay p50 - one DynamoDB round trip", "{:.1f} ms"),
    ("ddb_getitem_p50_ms", "  GetItem p50, for reference", "{:.1f} ms"),
    ("warm_peer_replay_p50_ms", "  the peer's replay p50, for reference", "{:.1f} ms"),
    ("handler_cpu_new_ms", "Handler CPU per new reschedule (median)", "{:.1f} ms"),
    ("handler_cpu_replay_ms", "Handler CPU per replay (median)", "{:.1f} ms"),
    ("warm_floor_cpu_ms", "  floor CPU (urllib3 PUT + PutItem), for reference", "{:.1f} ms"),
    ("handler_cpu_floor_ms", "  floor2 CPU (urllib3 PUT + PutItem + UpdateItem)", "{:.1f} ms"),
    ("handler_cpu_ratio", "  handler CPU / floor2 CPU", "{:.2f}x"),
    ("handler_cpu_peer_new_ms", "  the peer's CPU per new reschedule, for reference", "{:.1f} ms"),
    ("handler_cpu_peer_ratio", "  handler CPU / the peer's", "{:.2f}x"),
    ("ddb_calls_new", "DynamoDB round trips, new reschedule", "{:g}"),
    ("ddb_calls_replay", "DynamoDB round trips, replay", "{:g}"),
    ("ddb_calls_peer_new", "  the peer's DynamoDB round trips, new reschedule", "{:g}"),
    ("ddb_calls_peer_replay", "  the peer's DynamoDB round trips, replay", "{:g}"),
    ("secrets_calls_warm", "Secrets Manager calls per warm request", "{:g}"),
    ("connections_per_100", "TCP connections to the provider per 100 requests", "{:g}"),
    ("queue_accept_p50_ms", "Queued request (Prefer: respond-async), 202 p50", "{:.1f} ms"),
    ("queue_accept_p99_ms", "  202 p99", "{:.1f} ms"),
    ("queue_sync_replay_p50_ms", "  sync replay p50, same run", "{:.1f} ms"),
    ("queue_accept_ratio", "  202 p50 / sync replay p50, for reference", "{:.2f}x"),
    ("queue_floor_p50_ms", "  floor p50: SendMessage + 1 conditional PutItem", "{:.1f} ms"),
    ("queue_accept_floor_ratio", "  202 p50 / floor p50", "{:.2f}x"),
    ("queue_sync_new_p50_ms", "  sync new reschedule p50, same run (no provider delay)", "{:.1f} ms"),
    ("queue_repeat_p50_ms", "  repeat of a queued request (the same 202) p50", "{:.1f} ms"),
    ("queue_accept_cpu_ms", "  handler CPU per queued request (median)", "{:.1f} ms"),
    ("round_trips_queued", "Round trips per queued request (SQS + DynamoDB)", "{:g}"),
    ("sqs_calls_queued", "SQS calls per queued request", "{:g}"),
    ("ddb_calls_queued", "DynamoDB round trips, queued request", "{:g}"),
    ("ddb_calls_queued_repeat", "DynamoDB round trips, repeat of a queued request", "{:g}"),
    ("sqs_calls_sync_new", "SQS calls per sync success", "{:g}"),
    ("ddb_calls_sync_new", "DynamoDB round trips, sync success (queue configured)", "{:g}"),
    ("ddb_calls_delivery", "DynamoDB calls per delivery, unpaced (worker, one message)", "{:g}"),
    ("ddb_calls_paced_delivery", "DynamoDB calls per delivery, paced", "{:g}"),
    ("delivery_p50_ms", "  worker invocation per delivery p50 (provider included)", "{:.1f} ms"),
    ("paced_completion_s", "Paced burst: queued burst, worker's first poll to last delivery", "{:.2f} s"),
    ("paced_ideal_s", "  ideal: (N - 1) * 60 / rate", "{:.2f} s"),
    ("paced_completion_ratio", "  delivery / ideal", "{:.2f}x"),
    ("paced_first_call_s", "  first poll to the first provider call", "{:.2f} s"),
    ("paced_provider_span_s", "  first to last provider call", "{:.2f} s"),
    ("paced_provider_span_ratio", "  first to last call / ideal (slots are 1.05 intervals apart)", "{:.2f}x"),
    ("paced_min_gap_ms", "  closest two calls at the provider", "{:.0f} ms"),
    ("paced_429s", "  429s the provider answered", "{:g}"),
    ("recovery_p50_s", "Recovery: outage end to delivery p50, backlog queued during the outage", "{:.2f} s"),
    ("recovery_max_s", "  outage end to delivery, slowest", "{:.2f} s"),
    ("recovery_late_p50_s", "  delivered after its scheduled attempt, p50", "{:.2f} s"),
    ("recovery_late_max_s", "  delivered after its scheduled attempt, slowest", "{:.2f} s"),
    ("layer_unzipped_mib", "Layer size, unzipped", "{:.1f} MiB"),
    ("layer_zipped_mib", "Layer size, zipped", "{:.1f} MiB"),
    ("function_unzipped_mib", "Function code size, unzipped (with bytecode)", "{:.2f} MiB"),
    ("function_zipped_mib", "Function code size, zipped", "{:.2f} MiB"),
)


def rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(label, value, budget, verdict) for every figure present."""
    budgets = {budget.figure: budget for budget in BUDGETS}
    table = []
    for key, label, fmt in FIGURES:
        if key not in results:
            continue
        budget = budgets.get(key)
        limit = budget.describe() if budget else ""
        verdict = ("PASS" if budget.passes(results) else "FAIL") if budget else ""
        table.append((label, fmt.format(results[key]), limit, verdict))
    return table


def text_table(results: dict[str, Any]) -> str:
    table = rows(results)
    width = max(len(label) for label, *_ in table)
    lines = [f"{'figure':<{width}}  {'value':>10}  {'budget':<10}  verdict", "-" * (width + 34)]
    lines += [
        f"{label:<{width}}  {value:>10}  {limit:<10}  {verdict}" for label, value, limit, verdict in table
    ]
    return "\n".join(lines)


def _md_table(header: tuple[str, ...], body: list[tuple[str, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.strip() for cell in row) + " |" for row in body]
    return lines


def markdown(results: dict[str, Any]) -> str:
    """docs/performance.md's tables, regenerated from a results.json."""
    meta = results["meta"]
    by = (
        "A quick run (`BENCH_QUICK=1 python -m bench`: small samples, to be refreshed by a full `make bench`)"
        if meta.get("quick")
        else "Measured by `make bench`"
    )
    out = [
        f"{by} on {meta['date']}: {meta['machine']}, Python {meta['python']}, "
        f"load average {meta['loadavg_start']} at the start; {meta['cold_start_runs']} cold starts per "
        f"kind, {meta['warm_iterations']} warm iterations after {meta['warm_warmup']} warm-up ones.",
        "",
    ]
    queue_meta = meta.get("parts", {}).get("queue")
    if queue_meta is not None or "queue_iterations" in meta:
        where = (
            f"`python -m bench --only queue` on {queue_meta['date']}, load average "
            f"{queue_meta['loadavg_start']} at its start"
            if queue_meta
            else "the same run"
        )
        q = queue_meta or meta
        out[-1:-1] = [
            "",
            f"The queue rows (durable delivery and pacing) are from {where}: {q['queue_iterations']} "
            f"iterations after {q['queue_warmup']} warm-up ones, a backlog of {q['recovery_requests']} "
            f"requests, a burst of {q['paced_burst']} to {q['paced_account']}.",
        ]
    out += _md_table(("figure", "value", "budget", ""), [tuple(row) for row in rows(results)])
    spread = results.get("cold_start_spread_ms", {})
    if spread:
        ranges = ", ".join(f"{name} {low}-{high}" for name, (low, high) in spread.items())
        out += ["", f"Cold starts, fastest-slowest run (ms): {ranges}."]
    floor_steps = results.get("cold_start_deployed_floor_steps_ms", {})
    if floor_steps:
        steps_text = ", ".join(f"{name} {ms:.0f}" for name, ms in floor_steps.items())
        out += ["", f"The cold-start floor as deployed, step by step (median ms): {steps_text}."]
    for key, what in (
        ("import_deployed_self_ms_by_family", "the artifacts with bytecode"),
        ("import_deployed_nopyc_self_ms_by_family", "the artifacts without bytecode"),
    ):
        families = results.get(key, {})
        if families:
            total = results[key.replace("_by_family", "_total")]
            out += [
                "",
                f"`python -X importtime` on {what} (`import app` and the first request): {total:.0f} ms of "
                "self time, by family:",
                "",
            ]
            out += _md_table(("family", "self ms"), [(name, f"{ms:.0f}") for name, ms in families.items()])
    packages = results.get("import_deployed_self_ms_by_package", {})
    if packages:
        out += ["", "The same with bytecode, by package (self ms):", ""]
        out += _md_table(("package", "self ms"), [(name, f"{ms:.1f}") for name, ms in packages.items()])
    steps = results.get("init_steps_ms", {})
    if steps:
        out += [
            "",
            "Where a cold start goes (`bench.cold_child stages`, median of runs; ms, GC ms inside):",
            "",
        ]
        out += _md_table(
            ("step", "ms", "of which GC", "modules"),
            [(name, f"{s['ms']:.0f}", f"{s['gc_ms']:.0f}", f"{s['modules']}") for name, s in steps.items()],
        )
        calls = results.get("init_app_body_calls_ms", {})
        if calls:
            out += ["", "Inside app's module body (ms):", ""]
            out += _md_table(("call", "ms"), [(name, f"{ms:.1f}") for name, ms in calls.items()])
    families = results.get("import_self_ms_by_family", {})
    if families:
        total = results.get("import_self_ms_total", 0.0)
        out += [
            "",
            f"`python -X importtime` on `import app` and the first request: {total:.0f} ms of self time "
            f"(module bodies included) over {results.get('import_modules', 0)} modules, by family:",
            "",
        ]
        out += _md_table(("family", "self ms"), [(name, f"{ms:.0f}") for name, ms in families.items()])
    costs = prices.cost_rows(results)
    if costs:
        memory_mb = prices.FUNCTION_MEMORY_GB * 1024
        out += [
            "",
            f"What a million requests cost at these durations (arm64, {memory_mb:.0f} MB, "
            f"${prices.LAMBDA_ARM64_PER_GB_SECOND:.10f} per GB-s, "
            f"${prices.LAMBDA_PER_MILLION_REQUESTS:.2f} per million requests, "
            "duration rounded up to 1 ms, INIT billed):",
            "",
        ]
        out += _md_table(("a million", "duration", "Lambda cost"), [tuple(row) for row in costs])
        out += [
            "",
            "With SnapStart, each cold start is a restore instead: "
            f"${prices.snapstart_restores_per_million():.2f} per million restores, plus the snapshot cache, "
            f"${prices.snapstart_cache_per_month():.2f} per month for each active version (3-hour minimum).",
        ]
    return "\n".join(out)
