"""Registry freshness and callback isolation on the real local stack: the API emulator (HTTP door),
moto's Secrets Manager and SQS, the delivery worker and the callback function each under its own
event source poller, DynamoDB Local, the NovaCal sandbox and the callback sink (with a receiver that
drips its answer a byte a second).

Short settings keep the module quick; the tests assert against them (the defaults' relation to the
promises, 15 s for a new key and 60 s for a revocation, is a unit test: tests/unit/test_admission.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bench.counting import count_sends
from local.stack import Stack, start_stack
from relay.composition import build
from relay.settings import settings_from
from tests.helpers import WEBSITE, future, new_key, stored_record

REGISTRY_MAX_AGE_SECONDS = 6
REGISTRY_RECHECK_SECONDS = 2
CALLBACK_TIMEOUT_SECONDS = 4
# Polling, a container's cold start and a loaded machine.
SLACK_SECONDS = 3
# Requests in a row that must all be refused: with 2 API containers, each has answered several.
REFUSED_IN_A_ROW = 8
POLL_SECONDS = 0.2
# The delivery worker and the callback function, on the local pollers.
ARRIVAL_SECONDS = 30
# A normal source's callback arrives this soon after its outcome, drips or not.
NORMAL_CALLBACK_LAG_SECONDS = 6
DRIP_SOURCE = "drip-demo"
# Enough that, two at a time for CALLBACK_TIMEOUT_SECONDS each, they drip for a while.
DRIP_MOVES = 6
NORMAL_MOVES = 3
# What the template and the settings' default give the callback function.
CALLBACK_SOURCE_CONCURRENCY = 2
SETTINGS = {
    "REGISTRY_MAX_AGE_SECONDS": str(REGISTRY_MAX_AGE_SECONDS),
    "REGISTRY_RECHECK_SECONDS": str(REGISTRY_RECHECK_SECONDS),
    "CALLBACK_TIMEOUT_SECONDS": str(CALLBACK_TIMEOUT_SECONDS),
}


@pytest.fixture(scope="module")
def fstack() -> Iterator[Stack]:
    with start_stack(api_port=0, workers=2, extra_env=SETTINGS) as stack:
        yield stack


def relayctl(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | stack.describe()["aws"]["env"]
    return subprocess.run(  # noqa: S603 - our own tool, arguments from the test
        [sys.executable, "-m", "relayctl", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def lookup_status(stack: Stack, key: str) -> int:
    """401 for a key the relay refuses; 404 (an unknown id) for one it accepts."""
    assert stack.api is not None
    url = f"{stack.api.url}/v1/reschedules/{uuid.uuid4()}"
    return httpx.get(url, headers={"authorization": f"Bearer {key}"}, timeout=30).status_code


def seconds_until(condition: Any, limit: float) -> float:
    """Seconds until `condition()` holds (polled), or AssertionError past `limit`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > limit:
            raise AssertionError(f"not within {limit} s")
        time.sleep(POLL_SECONDS)
    return time.monotonic() - started


def _refused_everywhere(stack: Stack, key: str) -> bool:
    return all(lookup_status(stack, key) == 401 for _ in range(REFUSED_IN_A_ROW))


def test_a_new_key_works_within_seconds_and_a_revoked_one_is_refused_within_the_max_age(
    fstack: Stack,
) -> None:
    # Given the relay has served requests (its containers cache the registry)
    assert lookup_status(fstack, "sandbox-key-nobody") == 401
    # When the operator adds a source
    added = relayctl(
        fstack, "sources", "add", "fresh-zap", "--kind", "api_key", "--allow", "novacal:default", "--json"
    )
    assert added.returncode == 0, added.stderr
    key = json.loads(added.stdout)["api_key"]
    # Then its key works within the recheck interval (an unknown key re-reads the registry), not the max age
    took = seconds_until(lambda: lookup_status(fstack, key) == 404, REGISTRY_RECHECK_SECONDS + SLACK_SECONDS)
    assert took <= REGISTRY_RECHECK_SECONDS + SLACK_SECONDS < REGISTRY_MAX_AGE_SECONDS + SLACK_SECONDS
    print(f"figures: new key accepted after {took:.1f} s")  # noqa: T201 - the figures, with -rP
    # When it is revoked, every container refuses it within the registry's max age
    assert relayctl(fstack, "sources", "revoke", "fresh-zap").returncode == 0
    took = seconds_until(lambda: _refused_everywhere(fstack, key), REGISTRY_MAX_AGE_SECONDS + SLACK_SECONDS)
    assert took <= REGISTRY_MAX_AGE_SECONDS + SLACK_SECONDS
    print(f"figures: revoked key refused {REFUSED_IN_A_ROW} times in a row after {took:.1f} s")  # noqa: T201


def test_admission_costs_no_secrets_manager_call_per_request(fstack: Stack) -> None:
    # The relay's own wiring and Secrets Manager client, as one container has them.
    settings = settings_from(fstack.env | SETTINGS)
    secretsmanager = fstack.client("secretsmanager")
    relay = build(settings, dynamodb=fstack.client("dynamodb"), secretsmanager=secretsmanager)
    known = {"authorization": f"Bearer {WEBSITE.api_key}"}
    unknown = {"authorization": "Bearer sandbox-key-not-in-the-registry"}
    from relay.callers.admission import identify  # noqa: PLC0415 - beside its use, for the reader

    relay.sources.admit(lambda r: identify(r, known, now=time.time()))  # the first read fills the cache
    with count_sends(secretsmanager) as sends:
        started = time.monotonic()
        for _ in range(100):
            assert relay.sources.admit(lambda r: identify(r, known, now=time.time())).name == WEBSITE.name
        known_seconds = time.monotonic() - started
    # A hundred known keys inside the max age: no read at all.
    assert known_seconds < REGISTRY_MAX_AGE_SECONDS
    assert sends.operations == []
    with count_sends(secretsmanager) as sends:
        started = time.monotonic()
        for _ in range(100):
            with pytest.raises(Exception, match="not valid"):
                relay.sources.admit(lambda r: identify(r, unknown, now=time.time()))
        elapsed = time.monotonic() - started
    # A hundred unknown keys: one re-read per recheck interval at most, not one per request.
    assert 1 <= len(sends.operations) <= 1 + int(elapsed / REGISTRY_RECHECK_SECONDS)
    print(f"figures: 100 unknown keys in {elapsed:.1f} s cost {len(sends.operations)} reads")  # noqa: T201
    assert set(sends.operations) == {"GetSecretValue"}


# -- callbacks beside deliveries ---------------------------------------------------------------------


def _deliveries(sink: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = httpx.get(f"{sink}/_sink/deliveries").json()
    return found


def _overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one moment."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    most = current = 0
    for _, step in edges:
        current += step
        most = max(most, current)
    return most


def _post(stack: Stack, key: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    assert stack.api is not None
    return httpx.post(
        f"{stack.api.url}/v1/reschedules",
        json=body,
        headers={"authorization": f"Bearer {key}", "idempotency-key": new_key()} | headers,
        timeout=30,
    )


@dataclass(frozen=True)
class DripSource:
    name: str
    api_key: str


@pytest.fixture
def drip_source(fstack: Stack) -> Iterator[DripSource]:
    """A source made with relayctl whose callback goes to the sink's dripping receiver."""
    assert fstack.callback_sink is not None
    sink = fstack.callback_sink.url
    httpx.delete(f"{sink}/_sink/deliveries").raise_for_status()
    added = relayctl(
        fstack, "--json", "sources", "add", DRIP_SOURCE, "--kind", "api_key", "--allow", "novacal:default"
    )
    assert added.returncode == 0, added.stderr
    hook = f"{sink}/hooks/drip/{DRIP_SOURCE}"
    hooked = relayctl(fstack, "--json", "sources", "set", DRIP_SOURCE, "--callback-url", hook)
    assert hooked.returncode == 0, hooked.stderr
    source = DripSource(DRIP_SOURCE, json.loads(added.stdout)["api_key"])
    # Every container (the HTTP door's and the callback function's) sees the new source.
    seconds_until(
        lambda: lookup_status(fstack, source.api_key) == 404, REGISTRY_RECHECK_SECONDS + SLACK_SECONDS
    )
    time.sleep(REGISTRY_MAX_AGE_SECONDS)
    yield source
    assert relayctl(fstack, "sources", "revoke", DRIP_SOURCE).returncode == 0


def test_a_dripping_receiver_holds_up_neither_deliveries_nor_other_sources_callbacks(
    fstack: Stack, drip_source: DripSource
) -> None:
    assert fstack.callback_sink is not None
    sink = fstack.callback_sink.url
    novacal = fstack.sandboxes["novacal"].bookings
    # Given a source whose receiver drips its answer, with several outcomes to be told
    for number in range(DRIP_MOVES):
        move = {
            "provider": "novacal",
            "booking_id": novacal[3 + number % 2],
            "start": future(days=400 + number) + "Z",
        }
        answer = _post(fstack, drip_source.api_key, move)
        assert answer.status_code == 200, answer.text
    seconds_until(lambda: any(d["status"] == "drip" for d in _deliveries(sink)), ARRIVAL_SECONDS)
    # When another source's moves are queued while those POSTs drip
    queued = []
    for number in range(NORMAL_MOVES):
        move = {
            "provider": "novacal",
            "booking_id": novacal[number],
            "start": future(days=420 + number) + "Z",
        }
        answer = _post(fstack, WEBSITE.api_key, move, prefer="respond-async")
        assert answer.status_code == 202, answer.text
        queued.append(answer.json()["reschedule_id"])

    # Then they are delivered by the delivery worker ...
    finished_at: dict[str, float] = {}

    def all_delivered() -> bool:
        for reschedule_id in queued:
            if (
                reschedule_id not in finished_at
                and stored_record(fstack, reschedule_id)["status"] == "succeeded"
            ):
                finished_at[reschedule_id] = time.time()
        return len(finished_at) == len(queued)

    seconds_until(all_delivered, ARRIVAL_SECONDS)
    # ... and their callbacks arrive promptly, beside POSTs that are still dripping
    expected = {f"msg_{reschedule_id}" for reschedule_id in queued}

    def normal_arrived() -> list[dict[str, Any]]:
        return [
            d for d in _deliveries(sink) if d["headers"].get("webhook-id") in expected and d["status"] == 204
        ]

    seconds_until(lambda: len(normal_arrived()) == NORMAL_MOVES, ARRIVAL_SECONDS)
    normal = normal_arrived()
    for delivery in normal:
        reschedule_id = delivery["headers"]["webhook-id"].removeprefix("msg_")
        assert delivery["received_at"] - finished_at[reschedule_id] <= NORMAL_CALLBACK_LAG_SECONDS
    # They arrived while the dripping receiver was still being tried: beside it, not after it.
    drips = [d for d in _deliveries(sink) if d["status"] == "drip"]
    first_normal = min(d["received_at"] for d in normal)
    assert min(d["received_at"] for d in drips) <= first_normal
    assert any(d["ended_at"] is None or d["ended_at"] >= first_normal for d in drips), drips

    # And every dripping POST ended within the callback timeout, at most two of them at once
    def drips_ended() -> bool:
        found = [d for d in _deliveries(sink) if d["status"] == "drip"]
        return len(found) >= DRIP_MOVES and all(d["ended_at"] is not None for d in found)

    seconds_until(drips_ended, ARRIVAL_SECONDS)
    drips = [d for d in _deliveries(sink) if d["status"] == "drip"]
    held = [d["ended_at"] - d["received_at"] for d in drips]
    assert max(held) <= CALLBACK_TIMEOUT_SECONDS + SLACK_SECONDS, held
    # Cut off by the deadline (the sink counts from the request's arrival, after the connection).
    assert min(held) >= CALLBACK_TIMEOUT_SECONDS / 2, held
    overlap = _overlap([(d["received_at"], d["ended_at"]) for d in drips])
    assert overlap <= CALLBACK_SOURCE_CONCURRENCY
    lags = sorted(d["received_at"] - finished_at[d["headers"]["webhook-id"][4:]] for d in normal)
    print(  # noqa: T201 - the figures, with -rP
        f"figures: dripping POSTs held {min(held):.2f}-{max(held):.2f} s "
        f"(timeout {CALLBACK_TIMEOUT_SECONDS} s), at most {overlap} at once; "
        f"other callbacks {lags[0]:.2f}-{lags[-1]:.2f} s after their outcome"
    )
