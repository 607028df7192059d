"""Summaries of timing samples."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any


def percentile(samples: Sequence[float], p: float) -> float:
    """The p-th percentile (0 < p < 100), interpolated between closest ranks (Excel's PERCENTILE.INC)."""
    if not samples:
        raise ValueError("no samples")
    if len(samples) == 1:
        return float(samples[0])
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def single(values: Sequence[Any], what: str) -> Any:
    """The one value every request gave (a count that must not vary), else an error naming `what`."""
    if len(set(values)) != 1:
        raise RuntimeError(f"{what} differed between requests: {sorted(set(values))}")
    return values[0]


def median(samples: Sequence[float]) -> float:
    return float(statistics.median(samples))


def summary(samples: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "min": min(samples),
        "p50": percentile(samples, 50),
        "p90": percentile(samples, 90),
        "p99": percentile(samples, 99),
        "max": max(samples),
    }
