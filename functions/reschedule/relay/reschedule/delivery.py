"""The queue door's use case: deliver a queued reschedule exactly once.

Each SQS message is one `DeliveryOrder`. SQS delivers at least once, so a message is only ever a
prompt: the attempt record is the truth. A delivery attempt locks the record in the ledger (until
the worker's own invocation would be stopped), runs the attempt step the HTTP door also runs, and
writes the outcome with the idempotency item (completed with the success answer, or released on a
final failure) in one transaction. Waits between attempts are the message's visibility timeout
(or, near SQS's receive limit or past its visibility cap, a fresh copy sent with a delay).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from pydantic import ValidationError

from relay.command import PERSONAL_FIELDS
from relay.errors import RelayError
from relay.ports import MAX_DELAY_SECONDS, CircuitUnavailable, LedgerUnavailable, LockNotHeld
from relay.reschedule.attempts import (
    QUEUED,
    AttemptRecord,
    Delivery,
    Failed,
    Outcome,
    Queued,
    attempt_record,
    summary,
)
from relay.reschedule.circuit import Turn
from relay.reschedule.modes import DEFERRED_CODES, queueable
from relay.reschedule.schedule import (
    DeliveryOrder,
    Disposition,
    ReceivedMessage,
    ceil_seconds,
    retry_wait,
    show_again,
)
from relay.reschedule.stops import (
    DELIVERY_STOPPED,
    START_PASSED,
    last_moment,
    not_authorised,
    start_passed,
    stop_outcome,
    stopped,
)
from relay.times import stored_instant, utc_now

if TYPE_CHECKING:
    from relay.command import RescheduleCommand
    from relay.deadline import Deadline
    from relay.ports import Ledger, Queue
    from relay.reschedule.callbacks import Callbacks
    from relay.reschedule.circuit import Admission
    from relay.reschedule.step import AttemptStep
    from relay.settings import Settings

logger = Logger(child=True)

# A message whose record is missing may have overtaken the door's write (sent, then stored): look
# again after this long, for this long, then drop it (the door answered 503: it was never accepted).
ORPHAN_RECHECK_SECONDS = 2
ORPHAN_GRACE_SECONDS = 60
# An idle worker receives the order within milliseconds, often before the door's record write lands
# (tens of ms later): while the order is this young, read again in-process after these pauses rather
# than re-show the message whole seconds later (`make bench`: a third of a paced burst did).
ORPHAN_REREAD_WITHIN_SECONDS = 1.0
ORPHAN_REREAD_PAUSES_SECONDS = (0.05, 0.1, 0.2)
# Another worker holds the delivery: look again once its lock has expired, plus this.
LOCK_RECHECK_MARGIN_SECONDS = 1
# DynamoDB failed under the worker: try the message again after this long.
STORAGE_RECHECK_SECONDS = 5
# A message that comes back this early for its next attempt is delivered anyway (clock and rounding slack).
EARLY_TOLERANCE_SECONDS = 1

# Is this source still allowed this provider account? None: yes; else the reason code it is not
# (`source_revoked`, `account_not_allowed`). Composition reads the current sources registry.
Authorisation = Callable[[str, str, str], "str | None"]


def max_age_error(settings: Settings, last_error: str | None) -> RelayError:
    return RelayError(
        detail=f"Not delivered within {settings.delivery_max_age_seconds} seconds"
        + (f" (last error: {last_error})." if last_error else "."),
        status=503,
        code="delivery_max_age",
        title="Not delivered in time",
    )


class Deliveries:
    def __init__(
        self,
        settings: Settings,
        *,
        step: AttemptStep,
        ledger: Ledger,
        queue: Queue,
        callbacks: Callbacks | None = None,
        authorised: Authorisation | None = None,
        new_token: Any = lambda: str(uuid.uuid4()),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._settings = settings
        self._step = step
        self._ledger = ledger
        self._queue = queue
        self._callbacks = callbacks
        self._authorised = authorised
        self._new_token = new_token
        self._sleep = sleep

    # -- the worker ----------------------------------------------------------------------------------

    def deliver(self, message: ReceivedMessage, deadline: Deadline) -> Disposition:
        try:
            order = DeliveryOrder.model_validate_json(message.body)
        except ValidationError:
            # Poison: no retry can fix it. Parked for an operator; its content never goes to the log.
            logger.error("malformed delivery message parked in the dead-letter queue")
            self._queue.send_to_dead_letter(message.body)
            return Disposition.FINISHED
        try:
            return self._deliver(order, message, deadline)
        except (LedgerUnavailable, CircuitUnavailable) as exc:
            logger.warning(
                "storage failed during a delivery",
                extra={"reschedule_id": order.reschedule_id, "error": str(exc)},
            )
            return self._wait(order, message, STORAGE_RECHECK_SECONDS)

    def put_back(self, message: ReceivedMessage) -> None:
        """Not started in this invocation (too little time left): visible again at once for the next."""
        self._queue.change_visibility(message.receipt_handle, 0)

    # Each early return is one reason a message is not attempted now.
    def _deliver(  # noqa: PLR0911
        self, order: DeliveryOrder, message: ReceivedMessage, deadline: Deadline
    ) -> Disposition:
        record = self._read(order)
        now = utc_now()
        not_yet = self._not_ready(order, message, record, now)
        if not_yet is not None or record is None:
            return not_yet or Disposition.FINISHED
        token = self._new_token()
        try:
            ending = self._ending(order, now)
        except RelayError as exc:  # the sources registry could not be read: look again shortly
            logger.warning(
                "delivery could not re-authorise its source",
                extra={"reschedule_id": order.reschedule_id, "reason": exc.code},
            )
            return self._wait(order, message, STORAGE_RECHECK_SECONDS)
        admission = None
        if ending is None:
            admission = self._step.admit(order.command, token)
            if admission is not None and admission.turn is Turn.HELD:
                # The account's provider is down and another delivery probes it: no call, no write.
                logger.info(
                    "delivery held by the account's circuit",
                    extra={"reschedule_id": order.reschedule_id, "wait_s": admission.wait_seconds},
                )
                return self._wait(order, message, self._capped(order, admission.wait_seconds))
        remaining = deadline.invocation_remaining()
        until = int(now.timestamp()) + int(remaining if remaining is not None else MAX_DELAY_SECONDS) + 1
        try:
            self._ledger.lock_delivery(order.reschedule_id, token, now=int(now.timestamp()), until=until)
        except LockNotHeld:  # another copy of the message took it, or the source cancelled meanwhile
            self._step.release(admission)
            return self._wait(order, message, LOCK_RECHECK_MARGIN_SECONDS + 1)
        delivery = _delivery_of(order, record)
        if ending is not None and ending.code == "delivery_max_age":
            return self._give_up(order, record, delivery, token, message)
        if ending is not None:
            return self._finish(order, record, replace(delivery, finished_at=now), token, Failed(ending))
        return self._attempt(
            order, record, delivery, token=token, message=message, deadline=deadline, admission=admission
        )

    def _ending(self, order: DeliveryOrder, now: datetime) -> RelayError | None:
        """Why this queued move must end now without a call: its source may no longer make it, its
        start is too near, or it is past its maximum age. None: deliver it."""
        command = order.command
        if self._authorised is not None:
            reason = self._authorised(order.source, command.provider, command.account)
            if reason is not None:
                return not_authorised(reason)
        if now >= last_moment(command, self._settings):
            return start_passed(self._settings)
        if now - order.queued_at > timedelta(seconds=self._settings.delivery_max_age_seconds):
            return max_age_error(self._settings, None)
        return None

    def _capped(self, order: DeliveryOrder, seconds: int) -> int:
        """A wait that ends no later than just past the move's last moment (then it ends `start_passed`)."""
        until_last = ceil_seconds(last_moment(order.command, self._settings) - utc_now()) + 1
        return max(1, min(seconds, until_last))

    def _read(self, order: DeliveryOrder) -> dict[str, Any] | None:
        """The order's record; a young order's missing record is read again (the door writes it last)."""
        record = self._ledger.read_record(order.reschedule_id)
        for pause in ORPHAN_REREAD_PAUSES_SECONDS:
            if record is not None or utc_now() - order.queued_at > timedelta(
                seconds=ORPHAN_REREAD_WITHIN_SECONDS
            ):
                break
            self._sleep(pause)
            record = self._ledger.read_record(order.reschedule_id)
        return record

    def _not_ready(
        self, order: DeliveryOrder, message: ReceivedMessage, record: dict[str, Any] | None, now: datetime
    ) -> Disposition | None:
        """Why this message must not be delivered now (and what becomes of it), or None to deliver it."""
        log = {"reschedule_id": order.reschedule_id, "source": order.source}
        if record is None:
            answered_by = self._ledger.answered_by(order.idempotency_record)
            if answered_by is not None and answered_by != order.reschedule_id:
                # A repeat of an answered key sends its order before it finds the key taken.
                logger.info("delivery message of a repeated request dropped", extra=log)
                return Disposition.FINISHED
            if now - order.queued_at < timedelta(seconds=ORPHAN_GRACE_SECONDS):
                return self._wait(order, message, ORPHAN_RECHECK_SECONDS)
            logger.warning("delivery message without its record dropped (never accepted)", extra=log)
            return Disposition.FINISHED
        if (
            record.get("source") != order.source
            or record.get("idempotency_record") != order.idempotency_record
        ):
            logger.error("delivery message does not match its record; parked in the DLQ", extra=log)
            self._queue.send_to_dead_letter(message.body)
            return Disposition.FINISHED
        if record.get("status") != QUEUED:  # cancelled, or delivered by an earlier copy: nothing to do
            logger.info("delivery message for a finished request dropped", extra=log)
            return Disposition.FINISHED
        wait = _seconds_to_wait(record, now)
        return None if wait is None else self._wait(order, message, wait)

    def _attempt(
        self,
        order: DeliveryOrder,
        record: dict[str, Any],
        delivery: Delivery,
        *,
        token: str,
        message: ReceivedMessage,
        deadline: Deadline,
        admission: Admission | None = None,
    ) -> Disposition:
        attempts = delivery.attempts + 1
        command = self._command(order)
        try:
            moved = self._step.move(
                command,
                deadline,
                pace_wait=self._settings.pace_worker_wait_seconds,
                settle_first=delivery.unsettled,
                admission=admission,
                guard=self._guard(order, token),
            )
        except RelayError as error:
            try:
                return self._failed_attempt(order, record, delivery, token, message, error)
            except LockNotHeld:  # a stop (cancel, revocation) came while the call was under way
                return self._stopped(order, delivery, token, message)
        answer = moved.answer(order.reschedule_id, order.command)
        done = replace(delivery, attempts=attempts, next_attempt_at=None, finished_at=utc_now())
        final = self._rebuild(order, record, moved.outcome, done)
        expires_at = int(utc_now().timestamp()) + self._settings.idempotency_ttl_seconds
        for tries_left in (1, 0):
            try:
                # A stop asked for while the call was under way comes too late: the booking moved.
                self._ledger.delivered(
                    final, token, item_id=delivery.idempotency_record, answer=answer, expires_at=expires_at
                )
                break
            except LedgerUnavailable:
                # The booking has moved: try the write once more before the lock lapses into a redelivery.
                if not tries_left:
                    raise
        logger.info("reschedule delivered", extra=summary(final))
        self._notify(order, final)
        return Disposition.FINISHED

    def _guard(self, order: DeliveryOrder, token: str) -> Callable[[], None]:
        """Run right before each provider call: the move's last moment, then one conditional write
        (still queued, still this delivery's, no stop asked for) that marks the call as under way."""

        def guard() -> None:
            if utc_now() >= last_moment(order.command, self._settings):
                raise start_passed(self._settings)
            try:
                self._ledger.guard_send(order.reschedule_id, token)
            except LockNotHeld:
                raise stopped() from None

        return guard

    def _failed_attempt(  # noqa: PLR0917 - the same state every step of an attempt carries
        self,
        order: DeliveryOrder,
        record: dict[str, Any],
        delivery: Delivery,
        token: str,
        message: ReceivedMessage,
        error: RelayError,
    ) -> Disposition:
        if error.code == DELIVERY_STOPPED:
            return self._stopped(order, delivery, token, message)
        if error.code in DEFERRED_CODES:
            return self._defer(order, record, delivery, token, message, error)
        now = utc_now()
        if error.code == START_PASSED:  # no call went out: no attempt is counted
            return self._finish(order, record, replace(delivery, finished_at=now), token, Failed(error))
        attempts = delivery.attempts + 1
        progress = replace(
            delivery,
            attempts=attempts,
            next_attempt_at=None,
            last_error=error.code,
            last_error_detail=error.detail,
            finished_at=now,
            # A lost answer no read settled: the next attempt reads the booking before sending.
            unsettled=delivery.unsettled or self._step.unsettled(order.command, error),
        )
        if not queueable(error):
            return self._finish(order, record, progress, token, Failed(error))
        wait = retry_wait(
            attempts,
            self._settings.delivery_base_delay_seconds,
            at_least=getattr(error, "wait_at_least", None) or error.retry_after,
        )
        # The account's circuit is open now: this move waits for the next probe, not its own schedule.
        hold = self._step.hold_after(error)
        wait = self._capped(order, wait if hold is None else min(wait, hold))
        next_at = now + timedelta(seconds=wait)
        if next_at - order.queued_at > timedelta(seconds=self._settings.delivery_max_age_seconds):
            return self._give_up(order, record, progress, token, message)
        waiting = replace(progress, next_attempt_at=next_at, finished_at=None)
        self._ledger.progress(self._rebuild(order, record, Queued(), waiting), token)
        logger.info(
            "delivery attempt failed; retrying later",
            extra={
                "reschedule_id": order.reschedule_id,
                "attempts": attempts,
                "reason": error.code,
                "wait_s": wait,
            },
        )
        return self._wait(order, message, wait)

    def _stopped(
        self, order: DeliveryOrder, delivery: Delivery, token: str, message: ReceivedMessage
    ) -> Disposition:
        """The record was cancelled, or a stop was asked for while a call was under way: end it as
        asked (cancelled, or failed by a revocation), unless it is over already."""
        record = self._ledger.read_record(order.reschedule_id)
        if record is None or record.get("status") != QUEUED:
            logger.info(
                "delivery stopped: the request was cancelled", extra={"reschedule_id": order.reschedule_id}
            )
            return Disposition.FINISHED
        reason = record.get("stop_requested")
        if not reason or record.get("delivery_lock") != token:  # another delivery holds it now
            return self._wait(order, message, LOCK_RECHECK_MARGIN_SECONDS + 1)
        outcome = stop_outcome(str(reason))
        final = self._rebuild(order, record, outcome, replace(delivery, finished_at=utc_now()))
        try:
            self._ledger.undelivered(final, token, item_id=delivery.idempotency_record)
        except LockNotHeld:
            return Disposition.FINISHED
        logger.info("delivery stopped as asked", extra=summary(final))
        if isinstance(outcome, Failed):
            self._notify(order, final)
        return Disposition.FINISHED

    def _command(self, order: DeliveryOrder) -> RescheduleCommand:
        """The order's command with its personal fields, which the ledger keeps beside its key."""
        if not order.personal:
            return order.command
        personal = self._ledger.personal(order.idempotency_record) or {}
        return order.command.model_copy(update={k: v for k, v in personal.items() if k in PERSONAL_FIELDS})

    def _defer(  # noqa: PLR0917 - the same state every step of an attempt carries
        self,
        order: DeliveryOrder,
        record: dict[str, Any],
        delivery: Delivery,
        token: str,
        message: ReceivedMessage,
        error: RelayError,
    ) -> Disposition:
        """No pacing slot (or no pacing store): no call went out, so no attempt is counted; the record
        shows when it goes next (which also releases the lock) and the message waits until then."""
        wait = max(1, error.retry_after or 1)
        waiting = replace(delivery, next_attempt_at=utc_now() + timedelta(seconds=wait))
        self._ledger.progress(self._rebuild(order, record, Queued(), waiting), token)
        logger.info(
            "delivery deferred by pacing",
            extra={"reschedule_id": order.reschedule_id, "reason": error.code, "wait_s": wait},
        )
        return self._wait(order, message, wait)

    def _give_up(
        self,
        order: DeliveryOrder,
        record: dict[str, Any],
        delivery: Delivery,
        token: str,
        message: ReceivedMessage,
    ) -> Disposition:
        """Past the maximum age: failed, the key released, and the order parked for an operator's redrive."""
        self._finish(
            order, record, delivery, token, Failed(max_age_error(self._settings, delivery.last_error))
        )
        self._queue.send_to_dead_letter(message.body)
        return Disposition.FINISHED

    def _finish(
        self, order: DeliveryOrder, record: dict[str, Any], delivery: Delivery, token: str, outcome: Failed
    ) -> Disposition:
        final = self._rebuild(order, record, outcome, delivery)
        self._ledger.undelivered(final, token, item_id=delivery.idempotency_record)
        logger.info("delivery failed", extra=summary(final))
        self._notify(order, final)
        return Disposition.FINISHED

    def _notify(self, order: DeliveryOrder, record: AttemptRecord) -> None:
        if order.notify and self._callbacks is not None:
            self._callbacks.notify(order.source, record)

    def _rebuild(
        self, order: DeliveryOrder, record: dict[str, Any], outcome: Outcome, delivery: Delivery
    ) -> AttemptRecord:
        return attempt_record(
            reschedule_id=order.reschedule_id,
            source=order.source,
            attempted_at=stored_instant(record.get("attempted_at")) or order.queued_at,
            retention_days=self._settings.record_retention_days,
            outcome=outcome,
            command=order.command,
            delivery=delivery,
        )

    def _wait(self, order: DeliveryOrder, message: ReceivedMessage, seconds: int) -> Disposition:
        return show_again(self._queue, message, order.model_dump_json(), seconds)


def _seconds_to_wait(record: dict[str, Any], now: datetime) -> int | None:
    """Seconds until this record may be tried: another delivery's lock, or its next attempt time."""
    lock_expires = int(record.get("delivery_lock_expires") or 0)
    if lock_expires >= int(now.timestamp()):
        return lock_expires - int(now.timestamp()) + LOCK_RECHECK_MARGIN_SECONDS
    next_attempt_at = stored_instant(record.get("next_attempt_at"))
    if next_attempt_at is not None and next_attempt_at - now > timedelta(seconds=EARLY_TOLERANCE_SECONDS):
        return ceil_seconds(next_attempt_at - now)
    return None


def _delivery_of(order: DeliveryOrder, record: dict[str, Any]) -> Delivery:
    return Delivery(
        mode=order.mode,
        queued_at=order.queued_at,
        idempotency_record=order.idempotency_record,
        attempts=int(record.get("attempts") or 0),
        next_attempt_at=stored_instant(record.get("next_attempt_at")),
        last_error=record.get("last_error"),
        last_error_detail=record.get("last_error_detail"),
        unsettled=bool(record.get("outcome_unknown")),
    )
