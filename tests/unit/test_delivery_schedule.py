"""The retry schedule and the mode choice: pure functions, so their bounds are checked exactly."""

from __future__ import annotations

import random

import pytest

from relay.reschedule.modes import Mode, choose, prefers_async
from relay.reschedule.schedule import JITTER_FRACTION, SCHEDULE_MULTIPLES, retry_wait

BASE = 5


@pytest.mark.parametrize(
    ("attempts", "seconds"), [(1, 5), (2, 15), (3, 60), (4, 300), (5, 900), (6, 3600), (9, 3600)]
)
def test_the_schedule_is_5s_15s_1min_5min_15min_1h_then_hourly_within_the_jitter(
    attempts: int, seconds: int
) -> None:
    rng = random.Random(attempts)
    waits = [retry_wait(attempts, BASE, rng=rng) for _ in range(200)]
    assert min(waits) >= seconds * (1 - JITTER_FRACTION)
    assert max(waits) <= seconds * (1 + JITTER_FRACTION) + 1
    assert len(set(waits)) > 1 or seconds == BASE  # jittered (the 5 s step spans only a few whole seconds)


def test_never_sooner_than_the_providers_retry_after() -> None:
    assert retry_wait(1, BASE, at_least=120, rng=random.Random(1)) == 120
    assert retry_wait(6, BASE, at_least=120, rng=random.Random(1)) >= 3600 * (1 - JITTER_FRACTION)


def test_the_schedule_table_is_the_documented_one() -> None:
    assert tuple(m * BASE for m in SCHEDULE_MULTIPLES) == (5, 15, 60, 300, 900, 3600)


def test_mode_choice() -> None:
    def mode(prefer: str | None, delivery: str | None, kind: str, queue: bool = True) -> Mode:
        return choose(prefer_header=prefer, source_delivery=delivery, source_kind=kind, queue_available=queue)

    assert mode(None, None, "signed_link") is Mode.AUTO
    assert mode(None, None, "api_key") is Mode.SYNC
    assert mode(None, None, "standard_webhooks") is Mode.SYNC
    assert mode(None, "async", "api_key") is Mode.ASYNC
    assert mode("wait=5, respond-async", "sync", "api_key") is Mode.ASYNC
    assert mode("respond-async", None, "api_key", queue=False) is Mode.SYNC
    assert not prefers_async("respond-asyncx")
    assert prefers_async("Respond-Async;x=1")
