"""Outcome callbacks against the real local stack: the API emulator (HTTP door), moto's SQS, the
local event source running the real worker handler, DynamoDB Local, the NovaCal sandbox and the
stack's callback sink. Events are verified with the Standard Webhooks reference library.

A stack of this module's own: the registry is read fresh on every request (secret cache 0 s), so
a test can change a source's callback, and a 410 switch-off stays inside this module.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from local.secrets_emulator import put_secret_json
from local.seed import SECRETS_PREFIX, DemoSource, registry
from local.stack import Stack, start_stack
from relay.reschedule.callbacks import CallbackOrder
from tests.helpers import WEBSITE, ZAPIER, future, new_key, stored_record

# The worker polls, sends, and the sink answers: an event arrives within a few seconds.
ARRIVAL_SECONDS = 20
# The first retry waits 5 s (+-10 % jitter) after a failed POST.
RETRY_ARRIVAL_SECONDS = 30
# Long enough for an event that should not come to have come.
QUIET_SECONDS = 6


@pytest.fixture(scope="module")
def cstack() -> Iterator[Stack]:
    with start_stack(
        api_port=0, workers=2, extra_env={"SECRETS_MAX_AGE_SECONDS": "0", "REGISTRY_MAX_AGE_SECONDS": "0"}
    ) as stack:
        yield stack


@pytest.fixture
def sink(cstack: Stack) -> Iterator[str]:
    assert cstack.callback_sink is not None
    url = cstack.callback_sink.url
    httpx.delete(f"{url}/_sink/deliveries").raise_for_status()
    httpx.delete(f"{url}/_sink/faults").raise_for_status()
    yield url
    httpx.delete(f"{url}/_sink/faults").raise_for_status()


def _secret(stack: Stack, source: str) -> str:
    secret: str = stack.describe()["sources"][source]["callback_secret"]
    return secret


def _post(stack: Stack, body: dict[str, Any], *, key: str | None = None, **headers: str) -> httpx.Response:
    assert stack.api is not None
    return httpx.post(
        f"{stack.api.url}/v1/reschedules",
        json=body,
        headers={"authorization": f"Bearer {WEBSITE.api_key}", "idempotency-key": key or new_key()} | headers,
        timeout=30,
    )


def _move(stack: Stack, days: int) -> dict[str, Any]:
    booking = stack.sandboxes["novacal"].bookings[0]
    return {"provider": "novacal", "booking_id": booking, "start": future(days=days) + "Z"}


def _deliveries(sink: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = httpx.get(f"{sink}/_sink/deliveries").json()
    return found


def _wait_for(sink: str, count: int, seconds: float, *, status: int | None = None) -> list[dict[str, Any]]:
    deadline = time.monotonic() + seconds
    while True:
        found = [d for d in _deliveries(sink) if status is None or d["status"] == status]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def _verified(stack: Stack, delivery: dict[str, Any], source: str = WEBSITE.name) -> dict[str, Any]:
    """The event, verified as a receiver would (signature over the exact body, fresh timestamp)."""
    payload: dict[str, Any] = Webhook(_secret(stack, source)).verify(delivery["body"], delivery["headers"])
    return payload


def test_a_sync_success_is_posted_once_signed_with_the_sources_secret(cstack: Stack, sink: str) -> None:
    key = new_key()
    answer = _post(cstack, _move(cstack, 200), key=key)
    assert answer.status_code == 200, answer.text
    reschedule_id = answer.json()["reschedule_id"]
    (delivery,) = _wait_for(sink, 1, ARRIVAL_SECONDS)
    event = _verified(cstack, delivery)
    assert event["type"] == "reschedule.succeeded"
    assert event["data"]["reschedule_id"] == reschedule_id
    assert event["data"]["status"] == "succeeded"
    assert event["data"]["start"] == answer.json()["start"]
    assert delivery["headers"]["webhook-id"] == f"msg_{reschedule_id}"
    assert delivery["headers"]["content-type"] == "application/json"
    assert delivery["path"] == f"/hooks/{WEBSITE.name}"
    # Another source's secret does not verify it: the signature is this source's.
    with pytest.raises(WebhookVerificationError):
        Webhook(_secret(cstack, "form-demo")).verify(delivery["body"], delivery["headers"])
    # A replay of the same key is no new outcome: no second event.
    replay = _post(cstack, _move(cstack, 200), key=key)
    assert replay.status_code == 200
    assert replay.json()["replayed"] is True
    time.sleep(QUIET_SECONDS)
    assert len(_deliveries(sink)) == 1


def test_a_queued_request_is_posted_when_the_worker_delivers_it(cstack: Stack, sink: str) -> None:
    answer = _post(cstack, _move(cstack, 201), prefer="respond-async")
    assert answer.status_code == 202, answer.text
    reschedule_id = answer.json()["reschedule_id"]
    (delivery,) = _wait_for(sink, 1, ARRIVAL_SECONDS)
    event = _verified(cstack, delivery)
    assert event["type"] == "reschedule.succeeded"
    assert event["data"]["reschedule_id"] == reschedule_id
    assert event["data"]["attempts"] == 1
    assert stored_record(cstack, reschedule_id)["status"] == "succeeded"


def test_a_provider_refusal_is_posted_as_failed_and_a_validation_refusal_is_not(
    cstack: Stack, sink: str
) -> None:
    unknown = {"provider": "novacal", "booking_id": str(uuid.uuid4()), "start": future(days=202) + "Z"}
    answer = _post(cstack, unknown)
    assert answer.status_code == 404, answer.text
    (delivery,) = _wait_for(sink, 1, ARRIVAL_SECONDS)
    event = _verified(cstack, delivery)
    assert event["type"] == "reschedule.failed"
    assert event["data"]["reschedule_id"] == answer.json()["reschedule_id"]
    assert event["data"]["status"] == "failed"
    # A request refused before anything was attempted got its answer already: no event.
    invalid = _post(cstack, {"provider": "novacal", "booking_id": "1", "start": "yesterday"})
    assert invalid.status_code == 422
    time.sleep(QUIET_SECONDS)
    assert len(_deliveries(sink)) == 1


def test_an_endpoint_that_fails_then_recovers_gets_the_event_once_under_one_webhook_id(
    cstack: Stack, sink: str
) -> None:
    httpx.post(f"{sink}/_sink/faults", json={"status": 503, "times": 1}).raise_for_status()
    answer = _post(cstack, _move(cstack, 203))
    assert answer.status_code == 200, answer.text
    delivered = _wait_for(sink, 1, RETRY_ARRIVAL_SECONDS, status=204)
    received = _deliveries(sink)
    assert [d["status"] for d in received] == [503, 204]
    assert {d["headers"]["webhook-id"] for d in received} == {f"msg_{answer.json()['reschedule_id']}"}
    # The same bytes each time; each attempt is signed afresh (its own timestamp) and verifies.
    assert len({d["body"] for d in received}) == 1
    assert all(_verified(cstack, d)["type"] == "reschedule.succeeded" for d in received)
    first, retry = received[0]["received_at"], received[1]["received_at"]
    assert retry - first >= 4  # the schedule's first wait (5 s, jittered), not at once
    assert len(delivered) == 1


def test_a_copy_of_a_callback_message_delivered_twice_is_posted_once(cstack: Stack, sink: str) -> None:
    order = CallbackOrder(
        webhook_id=f"msg_{new_key()}",
        source=WEBSITE.name,
        reschedule_id="00000000-0000-4000-8000-000000000000",
        body=json.dumps({"type": "reschedule.succeeded", "timestamp": "2026-12-01T00:00:00Z", "data": {}}),
    )
    sqs = cstack.client("sqs")
    for _ in range(2):  # SQS delivers at least once: two copies of the same event
        sqs.send_message(QueueUrl=cstack.queues["DeliveryQueue"].url, MessageBody=order.model_dump_json())
    _wait_for(sink, 1, ARRIVAL_SECONDS)
    time.sleep(QUIET_SECONDS)
    assert [d["headers"]["webhook-id"] for d in _deliveries(sink)] == [order.webhook_id]


def test_410_switches_the_callback_off_until_the_registry_entry_changes(cstack: Stack, sink: str) -> None:
    httpx.post(f"{sink}/_sink/faults", json={"status": 410, "times": 1}).raise_for_status()
    assert _post(cstack, _move(cstack, 204)).status_code == 200
    assert [d["status"] for d in _wait_for(sink, 1, ARRIVAL_SECONDS)] == [410]
    # Off: the next outcome is not posted (and the 410 was not retried).
    assert _post(cstack, _move(cstack, 205)).status_code == 200
    time.sleep(QUIET_SECONDS)
    assert [d["status"] for d in _deliveries(sink)] == [410]
    # The operator points the source at a new URL: callbacks are on again.
    moved = tuple(
        replace(s, callback_url=f"{s.callback_url}?v=2")
        if isinstance(s, DemoSource) and s.name == WEBSITE.name
        else s
        for s in cstack.sources
    )
    secrets = cstack.client("secretsmanager")
    put_secret_json(secrets, f"{SECRETS_PREFIX}/sources", registry(moved))
    try:
        assert _post(cstack, _move(cstack, 206)).status_code == 200
        received = _wait_for(sink, 2, ARRIVAL_SECONDS)
        assert [d["status"] for d in received] == [410, 204]
        assert received[1]["path"] == f"/hooks/{WEBSITE.name}?v=2"
    finally:
        put_secret_json(secrets, f"{SECRETS_PREFIX}/sources", registry(cstack.sources))


def test_a_source_without_a_callback_queues_no_event(cstack: Stack, sink: str) -> None:
    assert cstack.api is not None
    booking = cstack.sandboxes["novacal"].bookings[1]
    answer = httpx.post(
        f"{cstack.api.url}/v1/reschedules",
        json={"provider": "novacal", "booking_id": booking, "start": future(days=207) + "Z"},
        headers={"authorization": f"Bearer {ZAPIER.api_key}", "idempotency-key": new_key()},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    time.sleep(QUIET_SECONDS)
    assert _deliveries(sink) == []
