"""Durable delivery and pacing (issues 12 and 13): runs `bench.queue_container` against the stack.

1. Queueing, with no worker polling: the 202 of an async request against a sync replay, measured in
   the same container and run; the remote calls of each; deliveries made in-container, one message
   per invocation, to count a delivery's DynamoDB calls (unpaced, and paced: one more).
2. Paced burst: requests to a paced account, queued while no worker polls; then the stack's worker
   (the local event source, as template.yaml maps it) starts: from its first poll to the last
   delivery, against the ideal (N - 1) * 60 / rate, and the 429s the sandbox answered. Queued first,
   so the figure is the delivery's pacing, not how fast one container can accept requests.
3. Recovery: the worker delivers a backlog queued during a provider outage; from the outage's end
   to each `succeeded`.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from bench import stats
from bench.lambda_env import run_container_child
from bench.workload import PROVIDER
from local.event_source import EventSourcePoller, event_source_config
from local.seed import PACED_NOVACAL_ACCOUNTS
from local.stack import CODE_DIR, WORKER_FUNCTION, Stack, start_worker_event_source
from local.template import TEMPLATE_PATH, load_template

QUEUE_ITERATIONS = 200  # each: async new, async repeat, sync new, sync replay
QUEUE_WARMUP = 20
DELIVERIES_IN_CONTAINER = 10  # of each kind (unpaced, paced), one message per invocation
RECOVERY_REQUESTS = 20  # the backlog queued during the outage
PACED_BURST = 60  # async requests to the paced account at once
PACED_ACCOUNT = "paced-fast"  # NovaCal at 600/min: the burst takes seconds, not a minute
PACED_PROVIDER = "novacal"
# One phase of the child takes a few minutes at most here; beyond this it is stuck.
PHASE_TIMEOUT_SECONDS = 600.0
# A stopped poller's last long poll (WaitTimeSeconds 20) must end before anything is queued again,
# or it would take a message and leave it invisible for the queue's whole visibility timeout.
POLLER_STOP_SECONDS = 30.0


def _run_child(stack: Stack, spec: dict[str, Any]) -> dict[str, Any]:
    result, _ = run_container_child(
        stack,
        "bench.queue_container",
        spec,
        timeout_s=PHASE_TIMEOUT_SECONDS,
        what=f"queue container ({spec['phase']})",
    )
    return result


def stop_worker(stack: Stack) -> None:
    """No worker polls the queue (the queueing phase measures the doors alone)."""
    poller = stack.event_source
    stack.event_source = None
    if poller is None:
        return
    poller.stop()
    deadline = time.monotonic() + POLLER_STOP_SECONDS
    while poller.running and time.monotonic() < deadline:
        time.sleep(0.2)
    if poller.running:
        raise RuntimeError("the stopped worker poller is still in a long poll")


def start_worker(stack: Stack, *, prestart: int | None = None) -> EventSourcePoller:
    """The worker as template.yaml maps it; by default every container is started first (cold starts
    are measured elsewhere; here the steady state)."""
    template = load_template(TEMPLATE_PATH)
    config = event_source_config(template, function=WORKER_FUNCTION)
    poller = start_worker_event_source(
        stack,
        code_dir=CODE_DIR,
        handler=None,
        template=template,
        prestart=config.maximum_concurrency if prestart is None else prestart,
    )
    if poller is None:
        raise RuntimeError("the stack has no delivery queue or no worker handler")
    stack.event_source = poller
    return poller


def _paced_spec() -> dict[str, Any]:
    secret = PACED_NOVACAL_ACCOUNTS[PACED_ACCOUNT]
    return {
        "paced_account": PACED_ACCOUNT,
        "paced_token": secret["api_key"],
        "paced_rate_per_minute": secret["rate_per_minute"],
        # The sandbox limits each paced key at its account's rate, as local/seed.py does.
        "limits": [
            {"token": s["api_key"], "per_minute": s["rate_per_minute"]}
            for s in PACED_NOVACAL_ACCOUNTS.values()
        ],
    }


def summarise_queue(result: dict[str, Any]) -> dict[str, Any]:
    s = result["samples"]
    async_new, sync_replay = stats.summary(s["async_new_ms"]), stats.summary(s["sync_replay_ms"])
    out: dict[str, Any] = {
        "queue_accept_p50_ms": async_new["p50"],
        "queue_accept_p99_ms": async_new["p99"],
        "queue_repeat_p50_ms": stats.median(s["async_repeat_ms"]),
        "queue_sync_new_p50_ms": stats.median(s["sync_new_ms"]),
        "queue_sync_replay_p50_ms": sync_replay["p50"],
        "queue_accept_cpu_ms": stats.median(s["async_new_cpu_ms"]),
        "queue_sync_new_cpu_ms": stats.median(s["sync_new_cpu_ms"]),
        "queue_sync_replay_cpu_ms": stats.median(s["sync_replay_cpu_ms"]),
        "sqs_calls_queued": stats.single(s["async_new_sqs_calls"], "SQS calls of a queued request"),
        "ddb_calls_queued": stats.single(s["async_new_dynamodb_calls"], "DynamoDB calls of a queued request"),
        "ops_queued": stats.single(s["async_new_operations"], "the calls of a queued request"),
        "sqs_calls_queued_repeat": stats.single(s["async_repeat_sqs_calls"], "SQS calls of a queued repeat"),
        "ddb_calls_queued_repeat": stats.single(
            s["async_repeat_dynamodb_calls"], "DynamoDB calls of a queued repeat"
        ),
        "sqs_calls_sync_new": stats.single(s["sync_new_sqs_calls"], "SQS calls of a sync success"),
        "ddb_calls_sync_new": stats.single(s["sync_new_dynamodb_calls"], "DynamoDB calls of a sync success"),
        "secrets_calls_queued": sum(s["async_new_secrets_calls"]) / len(s["async_new_secrets_calls"]),
        "ddb_calls_delivery": stats.single(s["delivery_dynamodb_calls"], "DynamoDB calls of a delivery"),
        "ops_delivery": stats.single(s["delivery_operations"], "the calls of a delivery"),
        "sqs_calls_delivery": stats.single(s["delivery_sqs_calls"], "SQS calls of a delivery"),
        "ddb_calls_paced_delivery": stats.single(
            s["paced_delivery_dynamodb_calls"], "DynamoDB calls of a paced delivery"
        ),
        "ops_paced_delivery": stats.single(s["paced_delivery_operations"], "the calls of a paced delivery"),
        "delivery_p50_ms": stats.median(s["delivery_ms"]),
        "queue_floor_p50_ms": stats.median(s["floor_ms"]),
        "queue_seconds": result["seconds"],
    }
    out["queue_accept_ratio"] = out["queue_accept_p50_ms"] / out["queue_sync_replay_p50_ms"]
    out["queue_accept_floor_ratio"] = out["queue_accept_p50_ms"] / out["queue_floor_p50_ms"]
    return out


def summarise_recovery(result: dict[str, Any], requests: int) -> dict[str, Any]:
    since, late = result["since_outage_end_s"], result["late_s"]
    if result["provider_calls_after_outage"] != requests:
        raise RuntimeError(
            f"{result['provider_calls_after_outage']} provider calls after the outage, not one per request"
        )
    return {
        "recovery_requests": requests,
        "recovery_p50_s": stats.median(since),
        "recovery_max_s": max(since),
        "recovery_late_p50_s": stats.median(late),
        "recovery_late_max_s": max(late),
        "recovery_attempts_at_end_max": max(result["attempts_at_outage_end"]),
        "recovery_attempts_max": max(result["attempts"]),
    }


def _min_gap_ms(times: list[float]) -> float:
    return min((b - a for a, b in itertools.pairwise(times)), default=0.0) * 1000


def summarise_paced(
    queued: dict[str, Any], result: dict[str, Any], polling_from: float, rate_per_minute: int
) -> dict[str, Any]:
    """`polling_from`: when the worker began polling the queue that held the whole burst."""
    requests = len(queued["burst_ids"])
    ideal = (requests - 1) * 60 / rate_per_minute
    calls = result["provider_calls_at"]
    if len(calls) != requests:
        raise RuntimeError(f"the paced account saw {len(calls)} moves for {requests} requests")
    completion = result["finished_at"][-1] - polling_from
    out = {
        "paced_requests": requests,
        "paced_rate_per_minute": rate_per_minute,
        "paced_ideal_s": ideal,
        "paced_completion_s": completion,
        "paced_completion_ratio": completion / ideal,
        "paced_first_call_s": calls[0] - polling_from,
        "paced_provider_span_s": calls[-1] - calls[0],
        "paced_accept_s": queued["burst_accept_s"],
        "paced_min_gap_ms": _min_gap_ms(calls),
        "paced_429s": result["rejected"],
        "paced_attempts_max": max(result["attempts"]),
    }
    out["paced_provider_span_ratio"] = out["paced_provider_span_s"] / ideal
    return out


def run(stack: Stack, *, iterations: int = QUEUE_ITERATIONS, warmup: int = QUEUE_WARMUP) -> dict[str, Any]:
    """All three parts; leaves the stack's worker polling (started anew after the queueing part)."""
    paced = _paced_spec()
    novacal = stack.sandboxes[PACED_PROVIDER]
    print(f"bench: queueing, {iterations} iterations (no worker polling)...", flush=True)
    stop_worker(stack)
    queued = _run_child(
        stack,
        {
            "phase": "queue",
            "iterations": iterations,
            "warmup": warmup,
            "deliveries": DELIVERIES_IN_CONTAINER,
            "paced_booking": novacal.bookings[0],
            "burst": PACED_BURST,
            "provider_url": novacal.url,
        }
        | paced,
    )
    figures = summarise_queue(queued)
    print(
        f"bench: paced burst, {PACED_BURST} queued to NovaCal {PACED_ACCOUNT}; starting the worker...",
        flush=True,
    )
    start_worker(stack)
    polling_from = time.time()
    burst = _run_child(
        stack, {"phase": "paced", "provider_url": novacal.url, "burst_ids": queued["burst_ids"]} | paced
    )
    figures |= summarise_paced(queued, burst, polling_from, paced["paced_rate_per_minute"])
    print(f"bench: recovery, {RECOVERY_REQUESTS} requests queued during a provider outage...", flush=True)
    recovery = _run_child(
        stack,
        {"phase": "recovery", "requests": RECOVERY_REQUESTS, "provider_url": stack.sandboxes[PROVIDER].url},
    )
    figures |= summarise_recovery(recovery, RECOVERY_REQUESTS)
    return figures
