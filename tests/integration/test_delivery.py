"""Durable delivery against the real local stack: the API emulator (HTTP door), moto's SQS, the
local event source poller running the real worker handler (queue door), DynamoDB Local and the
sandbox providers. The schedule is shortened by settings (base delay 1 s, maximum age 15 s)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from local.event_source import EventSourcePoller
from local.stack import REGION, TABLE_NAMES, Stack, start_stack
from relay.reschedule.attempts import QueuedAnswer
from tests.helpers import (
    WEBSITE,
    ZAPIER,
    Sandbox,
    future,
    link,
    new_key,
    start_delivery_worker,
    stored_record,
)

MAX_AGE_SECONDS = 15
# The worker's Lambda timeout here: its delivery lock lasts this long when it dies mid-call.
WORKER_TIMEOUT_SECONDS = 6
# The queue's visibility timeout here (template: 360 s): a crashed batch comes back after this.
VISIBILITY_TIMEOUT_SECONDS = 3
SETTLE_SECONDS = 30
AUTH = {"authorization": f"Bearer {ZAPIER.api_key}"}
ASYNC = AUTH | {"prefer": "respond-async"}


@pytest.fixture(scope="module")
def dstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # No worker from start_stack (an empty code dir): the module runs its own, with a short Timeout.
    no_worker = tmp_path_factory.mktemp("no-worker")
    with start_stack(
        api_port=0,
        workers=4,
        worker_code_dir=no_worker,
        extra_env={
            "PROVIDER_READ_TIMEOUT_SECONDS": "5",
            "DELIVERY_BASE_DELAY_SECONDS": "1",
            "DELIVERY_MAX_AGE_SECONDS": str(MAX_AGE_SECONDS),
            # The schedule is short here; so is the circuit's (test_queued_steering.py runs the default).
            "CIRCUIT_PROBE_INTERVAL_SECONDS": "1",
        },
        queue_overrides={"DeliveryQueue": {"VisibilityTimeout": str(VISIBILITY_TIMEOUT_SECONDS)}},
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def worker(dstack: Stack) -> Iterator[EventSourcePoller]:
    poller = start_delivery_worker(dstack, function_timeout_s=WORKER_TIMEOUT_SECONDS)
    yield poller
    poller.stop()


@pytest.fixture
def boxes(dstack: Stack, worker: EventSourcePoller) -> dict[str, Sandbox]:
    found = {name: Sandbox(sb.url, list(sb.bookings)) for name, sb in dstack.sandboxes.items()}
    for box in found.values():
        box.reset()
    return found


def _post(
    stack: Stack, body: dict[str, Any], headers: dict[str, str], key: str | None = None
) -> httpx.Response:
    extra = {"idempotency-key": key} if key else {}
    assert stack.api is not None
    return httpx.post(f"{stack.api.url}/v1/reschedules", json=body, headers=headers | extra, timeout=30)


def _get(stack: Stack, reschedule_id: str, headers: dict[str, str] = AUTH) -> httpx.Response:
    assert stack.api is not None
    return httpx.get(f"{stack.api.url}/v1/reschedules/{reschedule_id}", headers=headers, timeout=30)


def _delete(stack: Stack, reschedule_id: str, headers: dict[str, str] = AUTH) -> httpx.Response:
    assert stack.api is not None
    return httpx.delete(f"{stack.api.url}/v1/reschedules/{reschedule_id}", headers=headers, timeout=30)


def _until(check: Callable[[], Any], seconds: float = SETTLE_SECONDS, what: str = "condition") -> Any:
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} not reached within {seconds} s")


def _final(stack: Stack, reschedule_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        record: dict[str, Any] = _get(stack, reschedule_id).json()
        return record if record["status"] in ("succeeded", "failed", "cancelled") else None

    return _until(done, what=f"final state of {reschedule_id}")  # type: ignore[no-any-return]


def _iclosed(booking: int = 1001, days: int = 40, hour: int = 10) -> dict[str, Any]:
    return {
        "provider": "iclosed",
        "booking_id": booking,
        "start": future(days=days, hour=hour),
        "timezone": "UTC",
    }


def _idempotency_item(stack: Stack, record_key: str) -> dict[str, Any] | None:
    item = stack.client("dynamodb").get_item(
        TableName=TABLE_NAMES["IdempotencyTable"], Key={"id": {"S": record_key}}, ConsistentRead=True
    )
    found: dict[str, Any] | None = item.get("Item")
    return found


def _dead_letters(stack: Stack) -> list[str]:
    sqs = stack.client("sqs")
    url = stack.queues["DeliveryDeadLetterQueue"].url
    bodies = []
    for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
        "Messages", []
    ):
        bodies.append(message["Body"])
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


# -- async -----------------------------------------------------------------------------------------


def test_async_request_is_202_then_delivered_once_and_replays_as_a_sync_success(
    dstack: Stack, boxes: dict[str, Sandbox]
) -> None:
    key = new_key()
    body = _iclosed(days=41)
    answer = _post(dstack, body, ASYNC, key)
    assert answer.status_code == 202, answer.text
    accepted = answer.json()
    assert set(accepted) == set(QueuedAnswer.model_fields)
    assert {"reschedule_id", "status", "booking_id", "start", "timezone", "next_attempt_at"} <= set(accepted)
    assert accepted["status"] == "queued"
    assert accepted["booking_id"] == "1001"
    assert answer.headers["location"] == f"/v1/reschedules/{accepted['reschedule_id']}"
    assert answer.headers["preference-applied"] == "respond-async"

    record = _final(dstack, accepted["reschedule_id"])
    assert (record["status"], record["delivery"], record["attempts"]) == ("succeeded", "async", 1)
    assert record["provider_status"] == 200
    assert record["finished_at"]
    assert len(boxes["iclosed"].calls()) == 1

    # A repeat now answers exactly as a sync success does, whichever mode it asks for.
    for headers in (AUTH, ASYNC):
        replay = _post(dstack, body, headers, key)
        assert replay.status_code == 200, replay.text
        assert replay.json()["replayed"] is True
        assert replay.json()["status"] == "succeeded"
        assert replay.json()["reschedule_id"] == accepted["reschedule_id"]
        assert replay.headers["idempotent-replayed"] == "true"
    assert len(boxes["iclosed"].calls()) == 1


def test_repeats_while_queued_get_the_same_202_or_409_and_the_provider_is_called_once_per_attempt(
    dstack: Stack, boxes: dict[str, Sandbox]
) -> None:
    # Given a provider that fails the next 5 calls (first delivery attempt: 3 calls; it opens the
    # account's circuit, so then one call per probe: 2 more failures, then the success)
    boxes["iclosed"].fault(status=503, times=5)
    key = new_key()
    body = _iclosed(days=42)
    first = _post(dstack, body, ASYNC, key)
    assert first.status_code == 202, first.text
    reschedule_id = first.json()["reschedule_id"]
    # When the same key comes again while it is queued
    again = _post(dstack, body, ASYNC, key)
    sync = _post(dstack, body, AUTH, key)
    # Then async repeats get the same 202; a sync one is told it is still in progress
    assert again.status_code == 202
    assert again.json()["reschedule_id"] == reschedule_id
    assert again.headers["idempotent-replayed"] == "true"
    if sync.status_code == 409:  # queued still (it may already be delivered on a fast machine)
        assert sync.json()["code"] == "queued"
        assert int(sync.headers["retry-after"]) >= 1
    else:
        assert sync.status_code == 200
        assert sync.json()["replayed"] is True
    record = _final(dstack, reschedule_id)
    assert record["status"] == "succeeded"
    assert record["attempts"] == 4
    assert record["last_error"] == "provider_unavailable"
    # 5 failed calls, then exactly one success
    assert len(boxes["iclosed"].calls()) == 6


def test_async_validation_and_auth_happen_before_anything_is_queued(
    dstack: Stack, boxes: dict[str, Sandbox]
) -> None:
    bad = _post(dstack, _iclosed() | {"timezone": "Mars/Base"}, ASYNC, new_key())
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "timezone"
    nobody = _post(dstack, _iclosed(), {"prefer": "respond-async", "authorization": "Bearer sandbox-nope"})
    assert nobody.status_code == 401
    forbidden = _post(
        dstack, _iclosed(), {"prefer": "respond-async", "authorization": f"Bearer {WEBSITE.api_key}"}
    )
    assert forbidden.status_code == 403
    time.sleep(1)
    assert boxes["iclosed"].calls() == []


def test_a_provider_refusal_fails_the_queued_request_at_once_and_releases_its_key(
    dstack: Stack, boxes: dict[str, Sandbox]
) -> None:
    boxes["iclosed"].fault(status=404, times=1)
    key = new_key()
    body = _iclosed(days=43)
    queued = _post(dstack, body, ASYNC, key).json()
    record = _final(dstack, queued["reschedule_id"])
    assert (record["status"], record["reason"], record["attempts"]) == ("failed", "booking_not_found", 1)
    item = stored_record(dstack, queued["reschedule_id"])
    assert _idempotency_item(dstack, item["idempotency_record"]) is None
    # The key is free: the caller's retry runs again (and succeeds now)
    retry = _post(dstack, body, AUTH, key)
    assert retry.status_code == 200
    assert retry.json()["replayed"] is False


# -- auto ------------------------------------------------------------------------------------------


def test_auto_form_post_is_queued_when_the_provider_is_down_longer_than_the_sync_deadline(
    dstack: Stack, boxes: dict[str, Sandbox]
) -> None:
    # Given a form (signed link: auto by default) and a provider down for the sync attempt and more
    booking = boxes["novacal"].bookings[0]
    boxes["novacal"].fault(status=503, times=5)
    fields = {k: v for k, v in link(dstack, "novacal", booking).items() if k != "url"}
    body = fields | {"start": future(days=44) + "Z", "timezone": "UTC"}
    assert dstack.api is not None
    answer = httpx.post(f"{dstack.api.url}/v1/reschedules", json=body, timeout=30)
    # Then it is accepted, not failed
    assert answer.status_code == 202, answer.text
    assert "preference-applied" not in answer.headers
    reschedule_id = answer.json()["reschedule_id"]
    form_headers = {"authorization": f"Bearer {ZAPIER.api_key}"}
    assert _get(dstack, reschedule_id, form_headers).status_code == 404  # another source's record
    # And delivered once the provider is back: one success after the 5 failures
    record = _until(
        lambda: (r := stored_record(dstack, reschedule_id))["status"] != "queued" and r, what="delivery"
    )
    assert record["status"] == "succeeded"
    assert record["delivery"] == "auto"
    assert len(boxes["novacal"].calls()) == 6


def test_auto_html_form_post_goes_to_the_success_page_with_status_queued(
    dstack: Stack, boxes: dict[str, Sandbox]
) -> None:
    booking = boxes["novacal"].bookings[1]
    boxes["novacal"].fault(status=429, retry_after=1, times=3)
    fields = {k: v for k, v in link(dstack, "novacal", booking).items() if k != "url"}
    fields |= {"start": future(days=45) + "Z", "timezone": "UTC"}
    assert dstack.api is not None
    answer = httpx.post(
        f"{dstack.api.url}/v1/reschedules",
        data=fields,
        headers={"accept": "text/html"},
        timeout=30,
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"].endswith("status=queued")
    _until(lambda: len(boxes["novacal"].calls()) == 4, what="the queued delivery")


def test_auto_still_fails_at_once_on_a_non_retryable_answer(dstack: Stack, boxes: dict[str, Sandbox]) -> None:
    boxes["novacal"].fault(status=404, times=1)
    fields = {k: v for k, v in link(dstack, "novacal", boxes["novacal"].bookings[2]).items() if k != "url"}
    assert dstack.api is not None
    answer = httpx.post(
        f"{dstack.api.url}/v1/reschedules", json=fields | {"start": future(days=46) + "Z", "timezone": "UTC"}
    )
    assert answer.status_code == 404
    assert answer.json()["code"] == "booking_not_found"


def test_sync_sources_still_fail_at_once_when_the_provider_is_down(
    dstack: Stack, boxes: dict[str, Sandbox]
) -> None:
    boxes["iclosed"].fault(status=503, times=3)
    answer = _post(dstack, _iclosed(days=47), AUTH, new_key())
    assert answer.status_code == 503
    assert answer.json()["code"] == "provider_unavailable"


# -- exactly once ----------------------------------------------------------------------------------


def test_a_burst_of_duplicates_across_both_doors_is_delivered_once(
    dstack: Stack, boxes: dict[str, Sandbox]
) -> None:
    boxes["iclosed"].fault(status=503, times=2)
    key = new_key()
    body = _iclosed(days=48)
    headers = [ASYNC, AUTH] * 6
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda h: _post(dstack, body, h, key), headers))
    statuses = sorted({a.status_code for a in answers})
    assert set(statuses) <= {200, 202, 409, 503}, [a.text for a in answers]
    ids = {a.json()["reschedule_id"] for a in answers if a.status_code in (200, 202)}
    assert len(ids) <= 1

    # Settle: whatever took the key, the booking moved exactly once
    def settled() -> bool:
        answer = _post(dstack, body, AUTH, key)
        return answer.status_code == 200

    _until(settled, what="a settled key")
    calls = boxes["iclosed"].calls()
    assert len(calls) == 3  # two faulted calls, then one success
    # and a provider-side duplicate would have been a second call: none came later
    time.sleep(2)
    assert len(boxes["iclosed"].calls()) == 3


def test_a_worker_killed_mid_delivery_is_redelivered_with_one_provider_success(
    dstack: Stack, boxes: dict[str, Sandbox], worker: EventSourcePoller
) -> None:
    # Given a provider call that hangs (then fails) for longer than it takes to kill the worker
    boxes["iclosed"].fault(status=503, delay_ms=4000, times=1)
    answer = _post(dstack, _iclosed(days=49), ASYNC, new_key())
    reschedule_id = answer.json()["reschedule_id"]
    _until(lambda: len(boxes["iclosed"].calls()) == 1, what="the delivery's provider call")
    # When the worker's container dies mid-call
    for pid in worker.worker_pids():
        os.kill(pid, signal.SIGKILL)
    # Then the message comes back after its visibility timeout, the lock lapses, and it is delivered once
    record = _final(dstack, reschedule_id)
    assert record["status"] == "succeeded"
    assert len(boxes["iclosed"].calls()) == 2  # the killed call, then one success


def test_a_poison_message_goes_to_the_dead_letter_queue(dstack: Stack, boxes: dict[str, Sandbox]) -> None:
    _dead_letters(dstack)
    dstack.client("sqs").send_message(
        QueueUrl=dstack.queues["DeliveryQueue"].url, MessageBody="{not an order"
    )
    found = _until(
        lambda: "{not an order" in _dead_letters(dstack), seconds=15, what="the poison message in the DLQ"
    )
    assert found
    assert boxes["iclosed"].calls() == []


def test_past_the_maximum_age_the_request_is_failed_released_and_parked(
    dstack: Stack, boxes: dict[str, Sandbox]
) -> None:
    _dead_letters(dstack)
    boxes["iclosed"].fault(status=503, times=1000)
    key = new_key()
    body = _iclosed(days=50)
    queued = _post(dstack, body, ASYNC, key).json()
    record = _final(dstack, queued["reschedule_id"])
    boxes["iclosed"].reset()
    assert (record["status"], record["reason"], record["last_error"]) == (
        "failed", "delivery_max_age", "provider_unavailable",
    )  # fmt: skip
    assert record["attempts"] >= 2
    assert any(
        queued["reschedule_id"] in b for b in _until(lambda: _dead_letters(dstack), what="the DLQ copy")
    )
    retry = _post(dstack, body, AUTH, key)
    assert retry.status_code == 200
    assert retry.json()["replayed"] is False


# -- cancel ----------------------------------------------------------------------------------------


def test_cancel_while_queued_means_never_delivered_and_the_key_free(
    dstack: Stack, boxes: dict[str, Sandbox]
) -> None:
    boxes["iclosed"].fault(status=503, times=1000)
    key = new_key()
    body = _iclosed(days=51)
    reschedule_id = _post(dstack, body, ASYNC, key).json()["reschedule_id"]
    assert _delete(dstack, reschedule_id, {"authorization": f"Bearer {WEBSITE.api_key}"}).status_code == 404

    # Cancel wins: accepted at once, whatever the delivery is doing (test_queued_steering.py has more)
    cancelled = _delete(dstack, reschedule_id)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    boxes["iclosed"].reset()
    time.sleep(3)  # a retry would have come by now
    assert boxes["iclosed"].calls() == []
    assert _get(dstack, reschedule_id).json()["status"] == "cancelled"
    again = _delete(dstack, reschedule_id)
    assert (again.status_code, again.json()["code"]) == (409, "not_queued")
    retry = _post(dstack, body, AUTH, key)
    assert retry.status_code == 200
    assert retry.json()["replayed"] is False


# -- dependencies down when queueing ---------------------------------------------------------------


def test_sqs_unavailable_when_queueing_is_503_and_nothing_is_accepted(dstack: Stack) -> None:
    from relay.composition import build  # noqa: PLC0415 - relay is importable once conftest set the path
    from relay.dal.clients import new_client  # noqa: PLC0415
    from relay.deadline import Deadline  # noqa: PLC0415
    from relay.errors import RelayError  # noqa: PLC0415
    from relay.reschedule.modes import Mode  # noqa: PLC0415
    from relay.reschedule.normalise import command_from  # noqa: PLC0415
    from relay.settings import settings_from  # noqa: PLC0415

    options = {"region_name": REGION, "aws_access_key_id": "sandbox", "aws_secret_access_key": "sandbox"}

    def relay(dynamodb_endpoint: str, sqs_endpoint: str) -> Any:
        return build(
            settings_from(dstack.env),
            dynamodb=new_client("dynamodb", endpoint_url=dynamodb_endpoint, **options),
            secretsmanager=new_client("secretsmanager", endpoint_url=dstack.secrets.endpoint, **options),
            sqs=lambda: new_client("sqs", endpoint_url=sqs_endpoint, **options),
        )

    dead = "http://127.0.0.1:9"  # discard port: nothing listens
    for broken, code in ((relay(dstack.dynamodb.endpoint, dead), "queue_unavailable"),
                         (relay(dead, dstack.secrets.endpoint), "storage_unavailable")):  # fmt: skip
        command = command_from(_iclosed(days=52), allowed_providers=["iclosed"], settings=broken.settings)
        key = new_key()
        with pytest.raises(RelayError) as caught:
            broken.service.reschedule(
                command,
                source=ZAPIER.name,
                idempotency_key=key,
                deadline=Deadline.within(10),
                mode=Mode.ASYNC,
            )
        assert (caught.value.status, caught.value.code) == (503, code)
        # Nothing accepted: the key is free (a working relay takes it at once, as a new request)
        working = relay(dstack.dynamodb.endpoint, dstack.secrets.endpoint)
        answer = working.service.reschedule(
            command, source=ZAPIER.name, idempotency_key=key, deadline=Deadline.within(10), mode=Mode.ASYNC
        )
        assert answer["status"] == "queued"
        assert answer.get("replayed") is None
        if code == "queue_unavailable":  # the refused attempt is recorded as failed, never as queued
            failed = stored_record(dstack, caught.value.extra["reschedule_id"])
            assert (failed["status"], failed["reason"]) == ("failed", "queue_unavailable")
        _final(dstack, answer["reschedule_id"])


def test_without_a_key_a_queued_then_delivered_move_is_replayed_not_run_again(
    dstack: Stack, boxes: dict[str, Sandbox]
) -> None:
    # Given an async move with no Idempotency-Key (its key is the content's hash)
    body = _iclosed(booking=1002, days=47, hour=13)
    # (its delivery held at the provider, so the repeat surely comes while it is still in flight)
    boxes["iclosed"].fault(delay_ms=2000, times=1)
    first = _post(dstack, body, ASYNC)
    assert first.status_code == 202, first.text
    # When it is repeated while queued, and again once delivered
    again = _post(dstack, body, ASYNC)
    assert again.status_code == 202
    assert again.json()["reschedule_id"] == first.json()["reschedule_id"]
    record = _final(dstack, first.json()["reschedule_id"])
    assert record["status"] == "succeeded"
    after = _post(dstack, body, AUTH)
    # Then both repeats are answered from the record: the worker wrote the booking's last move
    assert after.status_code == 200, after.text
    assert after.json()["replayed"] is True
    assert after.json()["reschedule_id"] == first.json()["reschedule_id"]
    assert len(boxes["iclosed"].calls()) == 1
