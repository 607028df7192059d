"""Outcome callbacks without a network: the signature against the Standard Webhooks reference
library, which URLs are allowed, the registry's `callback`, and the retry schedule of the worker's
`Callbacks.send` with in-memory stand-ins for its ports (queue, state, endpoint)."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from relay.callers.registry import parse_registry
from relay.errors import RelayError
from relay.ports import CallbackClaim as Claim
from relay.ports import Claimed
from relay.reschedule.callbacks import (
    RETRY_WAITS_SECONDS,
    SOURCE_BUSY_RECHECK_SECONDS,
    CallbackOrder,
    Callbacks,
    event_body,
    is_callback,
)
from relay.reschedule.schedule import Disposition, ReceivedMessage
from relay.settings import settings_from
from relay.webhooks.sender import Answer, CallbackTarget, Sent, url_allowed
from relay.webhooks.signing import signature_header

SECRETS = (
    "whsec_" + base64.b64encode(b"sandbox-callback-key-one-0001").decode(),
    "whsec_" + base64.b64encode(b"sandbox-callback-key-two-0002").decode(),
)


def _keys() -> tuple[bytes, ...]:
    return tuple(base64.b64decode(s.removeprefix("whsec_")) for s in SECRETS)


def test_the_signature_verifies_with_the_reference_library_under_either_secret() -> None:
    body = b'{"type":"reschedule.succeeded","data":{}}'
    now = int(datetime.now(UTC).timestamp())
    header = signature_header(_keys(), "msg_1", now, body)
    assert header.count("v1,") == 2
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(now), "webhook-signature": header}
    for secret in SECRETS:  # a receiver mid-rotation holds either
        assert Webhook(secret).verify(body, headers) == json.loads(body)
    # The first signature is the first secret's, as the reference library signs it.
    expected = Webhook(SECRETS[0]).sign("msg_1", datetime.fromtimestamp(now, UTC), body.decode())
    assert header.split(" ")[0] == expected


@pytest.mark.parametrize(
    ("url", "loopback_allowed", "allowed"),
    [
        ("https://hooks.example.test/x", False, True),
        ("http://hooks.example.test/x", True, False),
        ("http://127.0.0.1:9000/hooks", False, False),
        ("http://127.0.0.1:9000/hooks", True, True),
        ("http://localhost:9000/hooks", True, True),
        ("http://[::1]:9000/hooks", True, True),
        ("http://10.0.0.1/hooks", True, False),
        ("ftp://127.0.0.1/hooks", True, False),
    ],
)
def test_only_https_or_allowed_loopback_http_is_posted_to(
    url: str, loopback_allowed: bool, allowed: bool
) -> None:
    assert url_allowed(url, allow_http_loopback=loopback_allowed) is allowed


def _registry(callback: dict[str, Any]) -> dict[str, Any]:
    return {
        "sources": {
            "zap": {
                "kind": "api_key",
                "api_key_sha256": ["0" * 64],
                "providers": {"novacal": ["default"]},
                "callback": callback,
            }
        }
    }


@pytest.mark.parametrize(
    "callback",
    [
        {"url": "ftp://hooks.example.test/x", "secrets": [SECRETS[0]]},
        {"url": "https://user:pw@hooks.example.test/x", "secrets": [SECRETS[0]]},
        {"url": "https://hooks.example.test/x", "secrets": []},
        {"url": "https://hooks.example.test/x", "secrets": ["not-a-whsec"]},
        {"url": "https://hooks.example.test/x"},
        {"url": "https://hooks.example.test/x", "secrets": [SECRETS[0]], "headers": {}},
    ],
)
def test_a_malformed_callback_makes_the_registry_refused(callback: dict[str, Any]) -> None:
    with pytest.raises(RelayError) as refused:
        parse_registry(_registry(callback))
    assert refused.value.code == "not_configured"
    assert "whsec" not in refused.value.detail


def test_the_callbacks_fingerprint_changes_with_its_url_or_secrets_and_its_repr_hides_the_keys() -> None:
    def target(url: str, secrets: list[str]) -> CallbackTarget:
        found = parse_registry(_registry({"url": url, "secrets": secrets})).callback_target("zap")
        assert found is not None
        return found

    first = target("https://hooks.example.test/x", [SECRETS[0]])
    assert first.keys == _keys()[:1]
    assert first == target("https://hooks.example.test/x", [SECRETS[0]])
    assert first.fingerprint != target("https://hooks.example.test/y", [SECRETS[0]]).fingerprint
    assert first.fingerprint != target("https://hooks.example.test/x", [SECRETS[1]]).fingerprint
    assert "sandbox-callback" not in repr(first)
    assert base64.b64encode(_keys()[0]).decode() not in repr(first)
    assert (
        parse_registry(_registry({"url": "https://h.example.test", "secrets": [SECRETS[0]]})).callback_target(
            "nobody"
        )
        is None
    )


# -- the worker's schedule, with stand-ins for its ports ---------------------------------------------


class _Queue:
    def __init__(self) -> None:
        self.sent: list[tuple[str, int]] = []
        self.dead: list[str] = []
        self.hidden: list[tuple[str, int]] = []

    def send(self, body: str, delay_seconds: int = 0) -> str:
        self.sent.append((body, delay_seconds))
        return "m"

    def send_to_dead_letter(self, body: str) -> str:
        self.dead.append(body)
        return "d"

    def change_visibility(self, receipt_handle: str, seconds: int) -> int:
        self.hidden.append((receipt_handle, seconds))
        return seconds


class _State:
    """relay.dal.callbacks.CallbackState in memory: delivered markers, holds, switched-off sources."""

    def __init__(self) -> None:
        self.delivered_ids: set[str] = set()
        self.held_until: dict[str, int] = {}
        self.off: dict[str, str] = {}
        # (source, slot) -> held until (epoch seconds); the slot orders asked for, in turn.
        self.slots: dict[tuple[str, int], int] = {}
        self.slot_order: list[list[int]] = []

    def claim(self, webhook_id: str, *, now: int, until: int) -> Claimed:
        if webhook_id in self.delivered_ids:
            return Claimed(Claim.DELIVERED)
        if self.held_until.get(webhook_id, 0) >= now:  # another worker is POSTing it
            return Claimed(Claim.BUSY, self.held_until[webhook_id])
        self.held_until[webhook_id] = until
        return Claimed(Claim.TAKEN)

    def delivered(self, webhook_id: str, *, now: int) -> None:
        self.delivered_ids.add(webhook_id)
        self.held_until.pop(webhook_id, None)

    def release(self, webhook_id: str) -> None:
        self.held_until[webhook_id] = 0

    def switched_off(self, source: str) -> str | None:
        return self.off.get(source)

    def switch_off(self, source: str, fingerprint: str, *, now: int) -> None:
        self.off[source] = fingerprint

    def take_slot(self, source: str, slots: Sequence[int], *, now: int, until: int) -> int | None:
        for slot in slots:
            if self.slots.get((source, slot), 0) < now:
                self.slots[(source, slot)] = until
                self.slot_order.append(list(slots))
                return slot
        return None

    def free_slot(self, source: str, slot: int) -> None:
        self.slots[(source, slot)] = 0


class _Endpoint:
    def __init__(self, *answers: Sent) -> None:
        self.answers = list(answers)
        self.posts: list[dict[str, Any]] = []

    def post(self, target: CallbackTarget, *, webhook_id: str, timestamp: int, body: bytes) -> Sent:
        self.posts.append({"webhook_id": webhook_id, "timestamp": timestamp, "body": body})
        return self.answers.pop(0)


TARGET = CallbackTarget(url="https://hooks.example.test/x", keys=_keys(), fingerprint="f1")


def _callbacks(endpoint: _Endpoint, queue: _Queue, state: _State) -> Callbacks:
    return Callbacks(
        settings_from({"IDEMPOTENCY_TABLE_NAME": "idem", "RESCHEDULES_TABLE_NAME": "recs"}),
        queue=queue,
        state=state,
        sender=endpoint,  # type: ignore[arg-type]
        targets=lambda source: TARGET if source == "zap" else None,
        rng=random.Random(7),
    )


def _record() -> dict[str, Any]:
    return {"reschedule_id": "r-1", "status": "succeeded", "provider": "novacal", "booking_id": "b"}


def _message(body: str, receives: int = 1) -> ReceivedMessage:
    return ReceivedMessage(body=body, receipt_handle="h", receive_count=receives)


def test_notify_queues_one_event_per_final_outcome_and_none_for_others() -> None:
    queue = _Queue()
    callbacks = _callbacks(_Endpoint(), queue, _State())
    callbacks.notify("zap", _record())
    callbacks.notify("zap", {**_record(), "status": "queued"})
    callbacks.notify("zap", {**_record(), "status": "cancelled"})
    ((body, delay),) = queue.sent
    assert delay == 0
    assert is_callback(body)
    order = CallbackOrder.model_validate_json(body)
    assert order.webhook_id == "msg_r-1"
    event = json.loads(order.body)
    assert event["type"] == "reschedule.succeeded"
    assert event["data"]["reschedule_id"] == "r-1"
    assert not is_callback('{"v": 1, "reschedule_id": "r-1"}')  # a delivery order
    assert not is_callback("not json")


def test_a_failing_endpoint_is_retried_on_the_standard_webhooks_schedule_then_parked() -> None:
    queue, state = _Queue(), _State()
    failures = [Sent(Answer.FAILED, 503, "HTTP 503")] * (len(RETRY_WAITS_SECONDS) + 1)
    endpoint = _Endpoint(*failures)
    callbacks = _callbacks(endpoint, queue, state)
    callbacks.notify("zap", _record())
    body = queue.sent.pop()[0]
    waits = []
    for _ in range(len(RETRY_WAITS_SECONDS) + 1):
        assert callbacks.send(_message(body)) is Disposition.FINISHED
        if not queue.sent:
            break
        body, delay = queue.sent.pop()
        order = CallbackOrder.model_validate_json(body)
        assert order.not_before is not None
        wait = (order.not_before - datetime.now(UTC)).total_seconds()
        waits.append(wait)
        assert delay == min(round(wait), 15 * 60) or abs(delay - wait) <= 1
        # Past its delay, the copy comes back early when the wait is over SQS's 15 minutes.
        body = order.model_copy(
            update={"not_before": datetime.now(UTC) - timedelta(seconds=1)}
        ).model_dump_json()
    assert len(endpoint.posts) == len(RETRY_WAITS_SECONDS) + 1
    assert {p["webhook_id"] for p in endpoint.posts} == {"msg_r-1"}
    assert len({p["body"] for p in endpoint.posts}) == 1
    for expected, wait in zip(RETRY_WAITS_SECONDS, waits, strict=True):
        assert expected * 0.89 <= wait <= expected * 1.11
    (parked,) = queue.dead
    assert CallbackOrder.model_validate_json(parked).attempts == 0  # a redrive starts the schedule again


def test_a_copy_that_comes_back_before_its_time_waits_in_the_queue() -> None:
    queue = _Queue()
    callbacks = _callbacks(_Endpoint(), queue, _State())
    early = CallbackOrder(
        webhook_id="msg_r-1",
        source="zap",
        reschedule_id="r-1",
        body="{}",
        attempts=3,
        not_before=datetime.now(UTC) + timedelta(hours=2),
    )
    assert callbacks.send(_message(early.model_dump_json())) is Disposition.WAITING
    ((_, seconds),) = queue.hidden
    assert 7190 <= seconds <= 7201


def test_410_switches_the_source_off_and_a_delivered_event_is_not_posted_again() -> None:
    queue, state = _Queue(), _State()
    endpoint = _Endpoint(Sent(Answer.GONE, 410), Sent(Answer.DELIVERED, 204))
    callbacks = _callbacks(endpoint, queue, state)
    callbacks.notify("zap", _record())
    body = queue.sent.pop()[0]
    assert callbacks.send(_message(body)) is Disposition.FINISHED
    assert state.off == {"zap": "f1"}
    assert queue.sent == []  # not retried
    assert callbacks.send(_message(body)) is Disposition.FINISHED
    assert len(endpoint.posts) == 1  # off: dropped without a POST
    state.off.clear()  # the registry entry changed (another fingerprint)
    assert callbacks.send(_message(body)) is Disposition.FINISHED
    assert callbacks.send(_message(body)) is Disposition.FINISHED  # a second copy: already delivered
    assert len(endpoint.posts) == 2


def test_a_malformed_callback_message_is_parked_and_a_source_without_a_callback_is_dropped() -> None:
    queue = _Queue()
    endpoint = _Endpoint()
    callbacks = _callbacks(endpoint, queue, _State())
    assert callbacks.send(_message('{"kind": "callback", "v": 1}')) is Disposition.FINISHED
    assert len(queue.dead) == 1
    gone = CallbackOrder(webhook_id="msg_x", source="nobody", reschedule_id="x", body="{}")
    assert callbacks.send(_message(gone.model_dump_json())) is Disposition.FINISHED
    assert endpoint.posts == []


def test_the_event_body_is_the_public_record() -> None:
    record = {**_record(), "idempotency_record": "private", "delivery_lock": "t"}
    event = json.loads(event_body(record, now=datetime(2026, 12, 1, tzinfo=UTC)))
    assert event["timestamp"] == "2026-12-01T00:00:00+00:00"
    assert "idempotency_record" not in event["data"]
    assert "delivery_lock" not in event["data"]


def test_an_event_another_worker_is_posting_waits_until_its_hold_ends() -> None:
    queue, state = _Queue(), _State()
    endpoint = _Endpoint()
    callbacks = _callbacks(endpoint, queue, state)
    callbacks.notify("zap", _record())
    body = queue.sent.pop()[0]
    state.held_until["msg_r-1"] = int(datetime.now(UTC).timestamp()) + 10
    assert callbacks.send(_message(body)) is Disposition.WAITING
    ((_, seconds),) = queue.hidden
    assert 10 <= seconds <= 12
    assert endpoint.posts == []


def test_a_source_whose_slots_are_all_held_waits_and_a_post_frees_the_slot_it_took() -> None:
    # Given a source whose two POST slots are held by other workers (its receiver is slow)
    queue, state = _Queue(), _State()
    endpoint = _Endpoint(Sent(Answer.DELIVERED, 204))
    callbacks = _callbacks(endpoint, queue, state)
    callbacks.notify("zap", _record())
    body = queue.sent.pop()[0]
    held = int(datetime.now(UTC).timestamp()) + 20
    state.slots = {("zap", 0): held, ("zap", 1): held}
    # When another of its events comes up, it is not POSTed: it comes back a few seconds later
    assert callbacks.send(_message(body)) is Disposition.WAITING
    assert queue.hidden == [("h", SOURCE_BUSY_RECHECK_SECONDS)]
    assert endpoint.posts == []
    # Then, once a slot is free, it is POSTed and the slot is free again afterwards
    state.slots[("zap", 1)] = 0
    assert callbacks.send(_message(body)) is Disposition.FINISHED
    assert len(endpoint.posts) == 1
    assert state.slots == {("zap", 0): held, ("zap", 1): 0}
    # Every slot is tried, from a random one on
    assert sorted(state.slot_order[0]) == [0, 1]


def test_an_event_found_on_the_delivery_queue_is_moved_to_the_callback_queue_unchanged() -> None:
    # Given a retry queued on the delivery queue by a version from before the callback queue
    old_queue, callback_queue, state = _Queue(), _Queue(), _State()
    endpoint = _Endpoint()
    _callbacks(endpoint, old_queue, state).notify("zap", _record())
    body = old_queue.sent.pop()[0]
    # When the worker finds it there, it hands it to the callbacks (whose queue is the callback queue)
    _callbacks(endpoint, callback_queue, state).adopt(body)
    # Then it is queued there as it was, and nothing is POSTed from the delivery worker
    assert callback_queue.sent == [(body, 0)]
    assert endpoint.posts == []
