"""AWS list prices (us-east-1) and what the measured durations cost per million requests.

Durations are this machine's, not Lambda's (docs/performance.md says how they differ); the table
shows how the bill follows them. Lambda bills duration in whole milliseconds, INIT included for
on-demand functions, at the function's memory (template.yaml's, via bench.lambda_env; arm64).
"""

from __future__ import annotations

import math
from typing import Any

from bench.lambda_env import FUNCTION_MEMORY_MB

LAMBDA_ARM64_PER_GB_SECOND = 0.0000133334
LAMBDA_PER_MILLION_REQUESTS = 0.20
# SnapStart for Python: the snapshot cache, per GB-second while the version is active (3-hour
# minimum), and each restore, per GB restored.
SNAPSTART_CACHE_PER_GB_SECOND = 0.0000015046
SNAPSTART_RESTORE_PER_GB = 0.0001397998
SNAPSTART_CACHE_MINIMUM_SECONDS = 3 * 3600
FUNCTION_MEMORY_GB = FUNCTION_MEMORY_MB / 1024
MILLION = 1_000_000
SECONDS_PER_MONTH = 30 * 24 * 3600


def per_million(duration_ms: float, memory_gb: float = FUNCTION_MEMORY_GB) -> float:
    """Requests plus duration, in dollars, for a million requests that each last `duration_ms`."""
    billed_seconds = math.ceil(duration_ms) / 1000
    return LAMBDA_PER_MILLION_REQUESTS + MILLION * billed_seconds * memory_gb * LAMBDA_ARM64_PER_GB_SECOND


def snapstart_restores_per_million(memory_gb: float = FUNCTION_MEMORY_GB) -> float:
    return MILLION * memory_gb * SNAPSTART_RESTORE_PER_GB


def snapstart_cache_per_month(memory_gb: float = FUNCTION_MEMORY_GB) -> float:
    return SECONDS_PER_MONTH * memory_gb * SNAPSTART_CACHE_PER_GB_SECOND


# (results key, what a million of them are)
COSTED = (
    ("warm_new_p50_ms", "new reschedules, warm (p50)"),
    ("replay_p50_ms", "replays, warm (p50)"),
    ("cold_start_deployed_ms", "new reschedules, each a cold start as deployed (with bytecode)"),
    ("cold_start_deployed_nopyc_ms", "new reschedules, each a cold start without bytecode (before)"),
)


def cost_rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(what, measured duration, dollars per million) for each costed figure present."""
    return [
        (what, f"{results[key]:.0f} ms", f"${per_million(results[key]):.2f}")
        for key, what in COSTED
        if key in results
    ]
