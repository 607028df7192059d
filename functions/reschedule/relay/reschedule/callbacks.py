"""Outcome callbacks: when a source's request reaches its final outcome (`succeeded` or `failed`,
sync or queued), the relay tells the source's callback URL and each of its subscriptions to that
event (relay.reschedule.subscriptions), through the queue, never in the request's path.

`notify` queues one `CallbackOrder` (one SQS call) on the callback queue, with the exact body every
attempt sends; the callback function's `send` POSTs it, signed (Standard Webhooks), with the event's
stable `webhook-id`. The callback queue and function are the deliveries' neighbours, never their
path: a slow receiver holds a callback worker, never a delivery worker. Each POST ends within
CALLBACK_TIMEOUT_SECONDS (relay/webhooks/sender.py), and one source's receiver holds at most
CALLBACK_SOURCE_CONCURRENCY workers at once (a DynamoDB slot each), so it cannot hold the others'. Retries
follow the Standard Webhooks schedule; a `410 Gone` switches the source's callback off until its
registry entry changes, and deletes a subscription. The URL and secrets are read from the registry
(or the subscription) at each attempt (never carried in a message), so a rotated secret, a removed
callback or a deleted subscription takes effect at once.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from aws_lambda_powertools import Logger
from pydantic import BaseModel, ConfigDict, ValidationError

from relay.ports import MAX_DELAY_SECONDS, CallbackStoreFailed, QueueUnavailable, SubscriptionStoreFailed
from relay.ports import CallbackClaim as Claim
from relay.reschedule.attempts import public_view
from relay.reschedule.schedule import Disposition, ReceivedMessage, ceil_seconds, jittered, show_again
from relay.reschedule.subscriptions import target_of
from relay.times import utc_now
from relay.webhooks.sender import Answer, Sent, url_allowed

if TYPE_CHECKING:
    from relay.ports import CallbackState, StoredSubscription
    from relay.ports import Queue as DeliveryQueue
    from relay.reschedule.subscriptions import Subscriptions
    from relay.settings import Settings
    from relay.webhooks.sender import CallbackTarget, WebhookSender

logger = Logger(child=True)

ORDER_KIND: Literal["callback"] = "callback"
# Waits after each failed attempt (Standard Webhooks: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h);
# after the last, the event is parked in the dead-letter queue for an operator's redrive.
RETRY_WAITS_SECONDS = (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
# Each retry wait is spread by this fraction either way.
JITTER_FRACTION = 0.1
# A worker holds an event while it POSTs: the POST's timeout plus this.
HOLD_MARGIN_SECONDS = 5
# DynamoDB failed under the worker: look at the message again after this long.
STORAGE_RECHECK_SECONDS = 5
# Every slot of the event's source is held (its receiver is slow): look at the message again after this.
SOURCE_BUSY_RECHECK_SECONDS = 5
# A message that comes back this early for its next attempt is sent anyway (clock and rounding slack).
EARLY_TOLERANCE_SECONDS = 1
FINAL_STATUSES = ("succeeded", "failed")


class CallbackOrder(BaseModel):
    """One outcome event for one source, as the queue carries it between attempts."""

    # Built at first use: only a source with a callback or the worker needs it.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    kind: Literal["callback"] = ORDER_KIND
    v: Literal[1] = 1
    webhook_id: str
    source: str
    reschedule_id: str
    # The event's JSON, exactly as every attempt sends (and signs) it.
    body: str
    # The source's subscription (relay.reschedule.subscriptions) it goes to; None: the registry callback.
    subscription: str | None = None
    attempts: int = 0
    not_before: datetime | None = None


def is_callback(body: str) -> bool:
    """Whether a queue message is a callback (the other messages are delivery orders)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return False
    return isinstance(parsed, dict) and parsed.get("kind") == ORDER_KIND


def event_body(record: Mapping[str, Any], *, now: datetime) -> str:
    """`{"type": "reschedule.<status>", "timestamp", "data": <the public record>}`."""
    event = {
        "type": f"reschedule.{record['status']}",
        "timestamp": now.isoformat(),
        # As stored (no attribute for an empty value), so the same as GET /v1/reschedules/{id} answers.
        "data": public_view({k: v for k, v in record.items() if v is not None}),
    }
    return json.dumps(event, separators=(",", ":"), default=str)


class Callbacks:
    def __init__(
        self,
        settings: Settings,
        *,
        queue: DeliveryQueue,
        state: CallbackState,
        sender: WebhookSender,
        targets: Callable[[str], CallbackTarget | None],
        subscriptions: Subscriptions | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._queue = queue
        self._state = state
        self._sender = sender
        self._targets = targets
        self._subscriptions = subscriptions
        self._rng = rng or random.Random()  # noqa: S311 - spreading retries, not secrecy

    # -- the doors: an outcome became final ----------------------------------------------------------

    def notify(self, source: str, record: Mapping[str, Any]) -> None:
        """Queue the outcome event of `record` for `source` (one SQS call). A failing queue does not
        change the outcome, which stands: the loss is logged where an operator finds it."""
        if record.get("status") not in FINAL_STATUSES:
            return
        reschedule_id = str(record["reschedule_id"])
        body = event_body(record, now=utc_now())
        # One order per receiver: the registry's callback, then each subscription to this event (each
        # its own webhook-id, so their deliveries are claimed and retried apart).
        receivers: list[tuple[str, str | None]] = []
        if self._targets(source) is not None:
            receivers.append((f"msg_{reschedule_id}", None))
        for sub in self._subscribed(source, f"reschedule.{record['status']}", reschedule_id):
            receivers.append((f"msg_{reschedule_id}.{sub.id}", sub.id))
        orders = [
            CallbackOrder(
                webhook_id=webhook_id, source=source, reschedule_id=reschedule_id, body=body, subscription=sub
            )
            for webhook_id, sub in receivers
        ]
        for order in orders:
            try:
                self._queue.send(order.model_dump_json())
            except QueueUnavailable as exc:
                logger.error(
                    "outcome callback NOT queued",
                    extra={
                        "reschedule_id": reschedule_id,
                        "source": source,
                        "error": exc.sqs_code or exc.code,
                    },
                )

    def _subscribed(self, source: str, event_type: str, reschedule_id: str) -> list[StoredSubscription]:
        """The source's subscriptions to this event; none when unreadable (logged, as a lost queue)."""
        if self._subscriptions is None:
            return []
        try:
            return self._subscriptions.matching(source, event_type)
        except SubscriptionStoreFailed as exc:
            logger.error(
                "subscription events NOT queued: subscriptions unreadable",
                extra={"reschedule_id": reschedule_id, "source": source, "error": str(exc)},
            )
            return []

    # -- the worker ----------------------------------------------------------------------------------

    def adopt(self, body: str) -> None:
        """Move an event found on the delivery queue (queued before the callback queue existed) to the
        callback queue, as it is: the callback function sends it from there."""
        self._queue.send(body)

    def send(self, message: ReceivedMessage) -> Disposition:
        try:
            order = CallbackOrder.model_validate_json(message.body)
        except ValidationError:
            logger.error("malformed callback message parked in the dead-letter queue")
            self._queue.send_to_dead_letter(message.body)
            return Disposition.FINISHED
        now = utc_now()
        early = order.not_before - now if order.not_before is not None else timedelta(0)
        if early > timedelta(seconds=EARLY_TOLERANCE_SECONDS):
            return show_again(self._queue, message, message.body, ceil_seconds(early))
        log = {"reschedule_id": order.reschedule_id, "source": order.source, "webhook_id": order.webhook_id}
        try:
            target = self._target_of(order)
            if target is None:
                logger.info("source has no such callback or subscription any more; event dropped", extra=log)
                return Disposition.FINISHED
            if not url_allowed(target.url, allow_http_loopback=self._settings.callback_allow_http_loopback):
                logger.error("callback URL refused: callbacks go to https URLs; event dropped", extra=log)
                return Disposition.FINISHED
            return self._attempt(order, message, target, log)
        except (CallbackStoreFailed, SubscriptionStoreFailed) as exc:
            logger.warning("storage failed during a callback", extra=log | {"error": str(exc)})
            return show_again(self._queue, message, message.body, STORAGE_RECHECK_SECONDS)

    def _target_of(self, order: CallbackOrder) -> CallbackTarget | None:
        """Read at each attempt: a changed registry entry or a deleted subscription applies at once."""
        if order.subscription is None:
            return self._targets(order.source)
        if self._subscriptions is None:
            return None
        found = self._subscriptions.find(order.source, order.subscription)
        return None if found is None else target_of(found)

    def _attempt(
        self,
        order: CallbackOrder,
        message: ReceivedMessage,
        target: CallbackTarget,
        log: dict[str, Any],
    ) -> Disposition:
        if order.subscription is None and self._state.switched_off(order.source) == target.fingerprint:
            logger.info("callback switched off by a 410 from its endpoint; event dropped", extra=log)
            return Disposition.FINISHED
        now = int(time.time())
        until = now + math.ceil(self._settings.callback_timeout_seconds) + HOLD_MARGIN_SECONDS
        slot = self._state.take_slot(order.source, self._slot_order(), now=now, until=until)
        if slot is None:  # the source's receiver already holds its share of the callback workers
            logger.info("every callback slot of the source is busy; event deferred", extra=log)
            return show_again(self._queue, message, message.body, SOURCE_BUSY_RECHECK_SECONDS)
        try:
            claimed = self._state.claim(order.webhook_id, now=now, until=until)
            if claimed.claim is Claim.DELIVERED:  # a copy SQS delivered twice, or a redrive of a sent one
                return Disposition.FINISHED
            if claimed.claim is Claim.BUSY:
                return show_again(self._queue, message, message.body, claimed.lock_until - now + 1)
            sent = self._sender.post(
                target, webhook_id=order.webhook_id, timestamp=int(time.time()), body=order.body.encode()
            )
            self._settle(order, target, sent, log | {"attempts": order.attempts + 1})
            return Disposition.FINISHED
        finally:
            self._state.free_slot(order.source, slot)

    def _slot_order(self) -> list[int]:
        """The source's slots from a random one on, so workers rarely contend for the same first slot."""
        count = self._settings.callback_source_concurrency
        first = self._rng.randrange(count)
        return [(first + step) % count for step in range(count)]

    def _settle(self, order: CallbackOrder, target: CallbackTarget, sent: Sent, log: dict[str, Any]) -> None:
        """Record what the endpoint answered; a failure is queued again for its next attempt."""
        if sent.answer is Answer.DELIVERED:
            self._state.delivered(order.webhook_id, now=int(time.time()))
            logger.info("outcome callback delivered", extra=log | {"http_status": sent.status})
            return
        self._state.release(order.webhook_id)
        if sent.answer is Answer.GONE and order.subscription is not None:
            self._unsubscribe(order, log)
            return
        if sent.answer is Answer.GONE:
            self._state.switch_off(order.source, target.fingerprint, now=int(time.time()))
            logger.warning(
                "callback endpoint answered 410 Gone: callbacks off for this source until its "
                "registry entry changes",
                extra=log,
            )
            return
        attempts = order.attempts + 1
        if attempts > len(RETRY_WAITS_SECONDS):
            logger.error(
                "outcome callback given up; parked in the dead-letter queue",
                extra=log | {"reason": sent.reason},
            )
            # A redrive starts its schedule again.
            parked = order.model_copy(update={"attempts": 0, "not_before": None})
            self._queue.send_to_dead_letter(parked.model_dump_json())
            return
        wait = self._wait_after(attempts)
        retry = order.model_copy(
            update={"attempts": attempts, "not_before": utc_now() + timedelta(seconds=wait)}
        )
        self._queue.send(retry.model_dump_json(), delay_seconds=min(wait, MAX_DELAY_SECONDS))
        logger.info(
            "outcome callback failed; retrying later", extra=log | {"reason": sent.reason, "wait_s": wait}
        )

    def _unsubscribe(self, order: CallbackOrder, log: dict[str, Any]) -> None:
        """A 410 from a subscription's URL deletes the subscription (REST hooks' unsubscribe)."""
        if self._subscriptions is None or order.subscription is None:
            return
        try:
            self._subscriptions.unsubscribe(order.source, order.subscription)
        except SubscriptionStoreFailed as exc:
            # Its next event meets the 410 again and tries again.
            logger.warning(
                "410 Gone, but the subscription could not be deleted", extra=log | {"error": str(exc)}
            )
            return
        logger.warning("subscription URL answered 410 Gone: subscription deleted", extra=log)

    def _wait_after(self, attempts: int) -> int:
        return max(1, round(jittered(RETRY_WAITS_SECONDS[attempts - 1], JITTER_FRACTION, self._rng)))
