"""Subscriptions in the outcome-callback machinery, without a network: which orders a final
outcome queues (the registry's callback and each subscription to its event), how the worker sends
one to a subscription (signed with its own secret), and what a 410 or a deleted subscription does.
The queue, state and endpoint are in-memory stand-ins for their ports; the subscriptions are the
real use case over an in-memory store that answers as relay.dal.subscriptions does."""

from __future__ import annotations

import base64
import json
import random
from typing import Any

from standardwebhooks.webhooks import Webhook

from relay.callers.registry import Caller, parse_registry
from relay.ports import StoredSubscription, SubscriptionItem, SubscriptionStoreFailed
from relay.reschedule.callbacks import CallbackOrder, Callbacks
from relay.reschedule.schedule import Disposition, ReceivedMessage
from relay.reschedule.subscriptions import Subscriptions
from relay.settings import settings_from
from relay.webhooks.sender import Answer, CallbackTarget, Sent
from relay.webhooks.signing import signature_header
from tests.unit.test_callback_rules import _Endpoint, _Queue, _State

SETTINGS = settings_from({"IDEMPOTENCY_TABLE_NAME": "idem", "RESCHEDULES_TABLE_NAME": "recs"})
REGISTRY_KEY = b"sandbox-registry-callback-key-01"
REGISTRY_TARGET = CallbackTarget(
    url="https://hooks.example.test/registry", keys=(REGISTRY_KEY,), fingerprint="f1"
)


def _secret(n: int) -> str:
    return "whsec_" + base64.b64encode(f"sandbox-subscription-key-{n:08d}".encode()).decode()


class _Store:
    """relay.dal.subscriptions.SubscriptionStore in memory (`broken`: DynamoDB does not answer)."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, StoredSubscription]] = {}
        self.broken = False

    def _check(self) -> None:
        if self.broken:
            raise SubscriptionStoreFailed("InternalServerError")

    def of_source(self, source: str) -> list[StoredSubscription]:
        self._check()
        return sorted(self.items.get(source, {}).values(), key=lambda s: (s.created_at, s.id))

    def get(self, source: str, sub_id: str) -> StoredSubscription | None:
        self._check()
        return self.items.get(source, {}).get(sub_id)

    def add(self, source: str, sub_id: str, item: SubscriptionItem) -> None:
        self._check()
        self.items.setdefault(source, {})[sub_id] = StoredSubscription(
            sub_id, item["url"], tuple(item["events"]), item["created_at"], item["secret"]
        )

    def remove(self, source: str, sub_id: str) -> bool:
        self._check()
        return self.items.get(source, {}).pop(sub_id, None) is not None


def _subscribe(store: _Store, source: str, sub_id: str, events: list[str], n: int) -> StoredSubscription:
    item: SubscriptionItem = {
        "url": f"https://hooks.example.test/{sub_id}",
        "events": events,
        "secret": _secret(n),
        "created_at": f"2026-12-01T00:00:0{n}+00:00",
    }
    store.add(source, sub_id, item)
    found = store.get(source, sub_id)
    assert found is not None
    return found


def _callbacks(store: _Store, queue: _Queue, state: _State, endpoint: _Endpoint) -> Callbacks:
    return Callbacks(
        SETTINGS,
        queue=queue,
        state=state,
        sender=endpoint,  # type: ignore[arg-type]
        targets=lambda source: REGISTRY_TARGET if source == "hooked" else None,
        subscriptions=Subscriptions(store, SETTINGS, enabled=lambda s: s != "off"),
        rng=random.Random(7),
    )


def _record(status: str = "succeeded") -> dict[str, Any]:
    return {"reschedule_id": "r-1", "status": status, "provider": "novacal", "booking_id": "b"}


def _orders(queue: _Queue) -> list[CallbackOrder]:
    return [CallbackOrder.model_validate_json(body) for body, _ in queue.sent]


def _message(order: CallbackOrder) -> ReceivedMessage:
    return ReceivedMessage(body=order.model_dump_json(), receipt_handle="h", receive_count=1)


def test_an_outcome_is_queued_for_the_registry_callback_and_each_subscription_to_its_event() -> None:
    store, queue = _Store(), _Queue()
    _subscribe(store, "hooked", "sub_succeeded_000000001", ["reschedule.succeeded"], 1)
    _subscribe(store, "hooked", "sub_failed_000000000002", ["reschedule.failed"], 2)
    _subscribe(store, "hooked", "sub_both_00000000000003", ["reschedule.succeeded", "reschedule.failed"], 3)
    _subscribe(store, "other", "sub_other_0000000000004", ["reschedule.succeeded"], 4)
    callbacks = _callbacks(store, queue, _State(), _Endpoint())
    callbacks.notify("hooked", _record())
    orders = _orders(queue)
    assert [(o.webhook_id, o.subscription) for o in orders] == [
        ("msg_r-1", None),
        ("msg_r-1.sub_succeeded_000000001", "sub_succeeded_000000001"),
        ("msg_r-1.sub_both_00000000000003", "sub_both_00000000000003"),
    ]
    assert len({o.body for o in orders}) == 1  # one event, sent to each
    assert {o.source for o in orders} == {"hooked"}


def test_a_source_without_a_registry_callback_is_told_through_its_subscriptions_only() -> None:
    store, queue = _Store(), _Queue()
    _subscribe(store, "plain", "sub_failed_000000000002", ["reschedule.failed"], 2)
    callbacks = _callbacks(store, queue, _State(), _Endpoint())
    callbacks.notify("plain", _record("succeeded"))
    assert queue.sent == []  # no receiver for this event: nothing queued
    callbacks.notify("plain", _record("failed"))
    ((only, _),) = queue.sent
    assert CallbackOrder.model_validate_json(only).subscription == "sub_failed_000000000002"
    callbacks.notify("nobody", _record())
    assert len(queue.sent) == 1


def test_unreadable_subscriptions_leave_the_registry_callback_queued() -> None:
    store, queue = _Store(), _Queue()
    _subscribe(store, "hooked", "sub_succeeded_000000001", ["reschedule.succeeded"], 1)
    store.broken = True
    _callbacks(store, queue, _State(), _Endpoint()).notify("hooked", _record())
    assert [o.subscription for o in _orders(queue)] == [None]


def test_a_subscription_event_is_posted_to_its_url_signed_with_its_own_secret() -> None:
    store, queue, state = _Store(), _Queue(), _State()
    sub = _subscribe(store, "hooked", "sub_succeeded_000000001", ["reschedule.succeeded"], 1)
    posted: list[tuple[CallbackTarget, str, int, bytes]] = []

    class _Recording(_Endpoint):
        def post(self, target: CallbackTarget, *, webhook_id: str, timestamp: int, body: bytes) -> Sent:
            posted.append((target, webhook_id, timestamp, body))
            return super().post(target, webhook_id=webhook_id, timestamp=timestamp, body=body)

    callbacks = _callbacks(store, queue, state, _Recording(Sent(Answer.DELIVERED, 204)))
    callbacks.notify("hooked", _record())
    order = _orders(queue)[1]
    assert callbacks.send(_message(order)) is Disposition.FINISHED
    ((target, webhook_id, timestamp, body),) = posted
    assert target.url == sub.url
    assert sub.secret not in repr(target)
    headers = {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(target.keys, webhook_id, timestamp, body),
    }
    event = Webhook(sub.secret).verify(body, headers)
    assert event["type"] == "reschedule.succeeded"
    assert json.loads(body) == event
    assert state.delivered_ids == {webhook_id}


def test_a_410_deletes_the_subscription_and_leaves_the_registry_callback_on() -> None:
    store, queue, state = _Store(), _Queue(), _State()
    _subscribe(store, "hooked", "sub_succeeded_000000001", ["reschedule.succeeded"], 1)
    endpoint = _Endpoint(Sent(Answer.GONE, 410))
    callbacks = _callbacks(store, queue, state, endpoint)
    callbacks.notify("hooked", _record())
    registry_order, sub_order = _orders(queue)
    queue.sent.clear()
    assert callbacks.send(_message(sub_order)) is Disposition.FINISHED
    assert store.of_source("hooked") == []
    assert state.off == {}  # the source's registry callback is not switched off
    assert queue.sent == []  # not retried
    # A copy of the same order, or a later event, finds no subscription: dropped without a POST.
    assert callbacks.send(_message(sub_order)) is Disposition.FINISHED
    assert len(endpoint.posts) == 1
    assert registry_order.subscription is None


def test_a_subscription_that_cannot_be_read_at_send_time_is_looked_at_again() -> None:
    store, queue = _Store(), _Queue()
    _subscribe(store, "hooked", "sub_succeeded_000000001", ["reschedule.succeeded"], 1)
    endpoint = _Endpoint()
    callbacks = _callbacks(store, queue, _State(), endpoint)
    callbacks.notify("hooked", _record())
    sub_order = _orders(queue)[1]
    store.broken = True
    assert callbacks.send(_message(sub_order)) is Disposition.WAITING
    assert queue.hidden
    assert endpoint.posts == []


def test_sources_with_subscriptions_on_are_told_their_outcomes_others_only_with_a_callback() -> None:
    registry = parse_registry(
        {
            "sources": {
                "zap": {
                    "kind": "api_key",
                    "api_key_sha256": ["0" * 64],
                    "providers": {"novacal": ["default"]},
                    "subscriptions": True,
                },
                "plain": {"kind": "api_key", "api_key_sha256": ["1" * 64], "providers": {}},
                "signer": {"kind": "standard_webhooks", "secrets": [_secret(9)], "providers": {}},
            }
        }
    )
    notify = {name: Caller.of(name, source).notify for name, source in registry.sources.items()}
    assert notify == {"zap": True, "plain": False, "signer": False}
    assert [name for name in registry.sources if registry.subscribes(name)] == ["zap"]


def test_a_source_with_subscriptions_off_is_not_read_nor_sent_to() -> None:
    store, queue = _Store(), _Queue()
    _subscribe(store, "off", "sub_succeeded_000000001", ["reschedule.succeeded"], 1)
    endpoint = _Endpoint(Sent(Answer.DELIVERED, 204))
    callbacks = _callbacks(store, queue, _State(), endpoint)
    store.broken = True  # a read would fail: none is made
    callbacks.notify("off", _record())
    assert queue.sent == []
    store.broken = False
    order = CallbackOrder(
        webhook_id="msg_r-1.sub_succeeded_000000001",
        source="off",
        reschedule_id="r-1",
        body="{}",
        subscription="sub_succeeded_000000001",
    )
    assert callbacks.send(_message(order)) is Disposition.FINISHED  # turned off since: dropped
    assert endpoint.posts == []
