"""The HTTP door's use case: reschedule once per idempotency key, record every attempt, answer.

The exactly-once protocol reads top to bottom in `reschedule`: take the key in the ledger, then
either answer what it already holds, or call the provider (the attempt step paces it) and complete
the key with the attempt record and the booking's last move in one write, or release it with the
failure's record so the caller's retry runs again. `async` queues the command instead (the 202 is
the key's answer until the worker replaces it); `auto` queues what the provider cannot take now.

It knows no HTTP, no SQS and no boto3: its ports are Protocols (relay/ports.py).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from relay.errors import (
    RelayError,
    conflict,
    invalid_field,
    not_configured,
    over_quota,
    unavailable,
    unprocessable,
)
from relay.ports import (
    Answered,
    Claim,
    KeyInProgress,
    KeyReused,
    LedgerKey,
    LedgerUnavailable,
    QueueUnavailable,
    QuotaExceeded,
    RecordWriteFailed,
    SourceQuotas,
)
from relay.reschedule.attempts import (
    QUEUED,
    AttemptRecord,
    Booking,
    Delivery,
    Failed,
    Outcome,
    Queued,
    Spam,
    Validated,
    attempt_record,
    queued_answer,
    summary,
)
from relay.reschedule.dry_run import dry_run_answer
from relay.reschedule.modes import DEFERRED_CODES, Mode, queueable
from relay.reschedule.schedule import QUEUED_KEY_MARGIN_SECONDS, DeliveryOrder, retry_wait
from relay.reschedule.stops import inside_lead, last_moment
from relay.times import utc_now

if TYPE_CHECKING:
    from relay.command import RescheduleCommand
    from relay.deadline import Deadline
    from relay.ports import Ledger, Queue, Quotas, Records
    from relay.providers.base import Provider
    from relay.reschedule.callbacks import Callbacks
    from relay.reschedule.step import AttemptStep
    from relay.settings import Settings

logger = Logger(child=True)

# Refusals of a booking the source may not touch: recorded without that booking.
NOT_ALLOWED_CODES = frozenset({"provider_not_allowed", "account_not_allowed"})
IDEMPOTENCY_KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")
IN_PROGRESS_RETRY_AFTER_SECONDS = 1
STORAGE_RETRY_AFTER_SECONDS = 2


class RescheduleService:
    def __init__(
        self,
        settings: Settings,
        *,
        ledger: Ledger,
        records: Records,
        step: AttemptStep,
        adapters: Mapping[str, Provider],
        queue: Queue | None = None,
        callbacks: Callbacks | None = None,
        counters: Quotas | None = None,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._ledger = ledger
        self._records = records
        self._step = step
        self._adapters = adapters
        self._queue = queue
        self._callbacks = callbacks
        # The per-source quota counters (relay/dal/quotas.py); None: no quotas (unit tests).
        self._counters = counters
        self._new_id = new_id
        self._clock = clock

    @property
    def queue_available(self) -> bool:
        return self._queue is not None

    # -- POST /v1/reschedules ----------------------------------------------------------------------

    def reschedule(
        self,
        command: RescheduleCommand,
        *,
        source: str,
        idempotency_key: str | None,
        deadline: Deadline,
        mode: Mode = Mode.SYNC,
        notify: bool = False,
        quotas: SourceQuotas | None = None,
    ) -> dict[str, Any]:
        """Run once per key; every attempt is recorded. `notify`: queue the final outcome's callback.

        `quotas`: the source's (relay/dal/quotas.py); counted once per key, so a replay never counts."""
        if mode is not Mode.SYNC and utc_now() >= last_moment(command, self._settings):
            # Queued, it could not arrive before the slot's lead: refused before anything is queued.
            raise self.refuse(source, inside_lead(self._settings), command)
        key = self._key(source, command, idempotency_key)
        if mode is Mode.ASYNC:
            try:  # counted, and its place in the backlog taken, in one write
                self._count(key, source, command, quotas, queued=True)
            except RelayError as error:
                raise self.refuse(source, error, command) from None
            return self._accept(key, source, command, notify=notify)
        self._step.prefetch(command)  # on a cold cache, the account's secret is read meanwhile
        taken = self._take(key, source, command, deadline)
        if isinstance(taken, Answered):
            return self._replay(taken.answer, source, command, mode)
        reschedule_id, attempted_at = self._new_id(), utc_now()
        try:
            self._count(key, source, command, quotas)
        except RelayError as error:  # over a quota: recorded, and the key freed for a later retry
            error.extra["reschedule_id"] = reschedule_id
            refused = self._record(reschedule_id, source, Failed(error), command=command)
            # An unsettled key stays so: the retry must still read the booking first.
            self._release(taken, refused, unsettled=taken.settle_first)
            raise
        try:
            moved = self._step.move(
                command,
                deadline,
                pace_wait=self._settings.pace_sync_wait_seconds,
                settle_first=taken.settle_first,
            )
        except RelayError as error:
            if mode is Mode.AUTO and self._queue is not None and queueable(error):
                try:
                    return self._enqueue(
                        taken,
                        source,
                        command,
                        reschedule_id,
                        attempted_at,
                        notify=notify,
                        last_error=error,
                        quotas=quotas,
                    )
                except (QueueUnavailable, QuotaExceeded):
                    logger.warning("auto delivery could not queue; answering the provider's failure")
            error.extra["reschedule_id"] = reschedule_id
            failed = self._record(
                reschedule_id, source, Failed(error), command=command, attempted_at=attempted_at
            )
            self._release(taken, failed, unsettled=self._step.unsettled(command, error))
            self._notify(notify, source, failed)
            raise
        answer = moved.answer(reschedule_id, command)
        succeeded = self._record(
            reschedule_id, source, moved.outcome, command=command, attempted_at=attempted_at
        )
        self._complete(taken, answer, succeeded)
        self._notify(notify, source, succeeded)
        return answer

    def _key(self, source: str, command: RescheduleCommand, idempotency_key: str | None) -> LedgerKey:
        """The caller's key (any payload change is a reuse), else the command's content; scoped by source."""
        if idempotency_key is None:
            material = command.key_material()
            digest = hashlib.sha256(json.dumps(material, sort_keys=True, separators=(",", ":")).encode())
            scoped, payload = f"{source}|command:{digest.hexdigest()}", material
        else:
            if not IDEMPOTENCY_KEY_PATTERN.match(idempotency_key):
                raise self.refuse(
                    source,
                    invalid_field("Idempotency-Key", "Use 1 to 255 visible ASCII characters."),
                    command,
                )
            scoped, payload = f"{source}|header:{idempotency_key}", command.model_dump(mode="json")
        return self._ledger.key(
            scoped,
            payload,
            source=source,
            provider=command.provider,
            booking_id=command.booking_id,
            content_keyed=idempotency_key is None,
        )

    def _count(
        self,
        key: LedgerKey,
        source: str,
        command: RescheduleCommand,
        quotas: SourceQuotas | None,
        *,
        queued: bool = False,
    ) -> None:
        """A new request of this source, and a new move of its booking today (and with `queued`, a place
        in its backlog): 429 when over a quota."""
        if self._counters is None or quotas is None:
            return
        try:
            self._counters.count(
                source,
                key.item_id,
                provider=command.provider,
                booking_id=command.booking_id,
                quotas=quotas,
                now=self._clock(),
                queued=queued,
            )
        except QuotaExceeded as exc:
            raise _over_quota(exc) from None

    def _take(
        self, key: LedgerKey, source: str, command: RescheduleCommand, deadline: Deadline
    ) -> Claim | Answered:
        """The key for this request until its invocation ends, or the answer it already has."""
        now = self._clock()
        # The lock must outlive this invocation; without one (tests), the deadline and its margin.
        held = deadline.invocation_remaining()
        if held is None:
            held = deadline.remaining() + self._settings.deadline_safety_margin_seconds
        try:
            return self._ledger.take(
                key, now=now, lock_seconds=held, expires_at=int(now) + self._settings.idempotency_ttl_seconds
            )
        except (KeyInProgress, KeyReused, LedgerUnavailable) as exc:
            raise self.refuse(source, _key_refusal(exc), command) from None

    def _replay(
        self, answer: dict[str, Any], source: str, command: RescheduleCommand, mode: Mode
    ) -> dict[str, Any]:
        """The stored answer, as first given, flagged; a sync caller of a queued request must wait."""
        if answer.get("status") == QUEUED and mode is Mode.SYNC:
            raise self.refuse(
                source,
                conflict(
                    "The same request is queued for delivery; try again later.",
                    "queued",
                    retry_after=_seconds_until(answer.get("next_attempt_at")),
                ),
                command,
            )
        return {**answer, "replayed": True}

    def _complete(self, claim: Claim, answer: Mapping[str, Any], record: AttemptRecord) -> None:
        """The success, its record and the booking's last move in one write."""
        expires_at = int(self._clock()) + self._settings.idempotency_ttl_seconds
        try:
            self._ledger.complete(claim, answer, record, expires_at=expires_at)
        except LedgerUnavailable as exc:
            # The booking moved; only storing it failed. The outcome stands: record it on its own.
            logger.warning("idempotency store unavailable", extra={"error": str(exc)})
            self._save_record(record)
            return
        logger.info("reschedule attempt", extra=summary(record))

    def _release(self, claim: Claim, record: AttemptRecord, *, unsettled: bool = False) -> None:
        """A failure: the key is freed for the caller's retry, with the attempt's record, in one write
        (`unsettled`: the outcome is unknown; the retry reads the booking first)."""
        try:
            self._ledger.release(claim, record, unsettled=unsettled)
        except LedgerUnavailable as exc:
            # The key stays locked until this invocation's end; the record is written on its own.
            logger.warning("idempotency store unavailable", extra={"error": str(exc)})
            self._save_record(record)
            return
        logger.info("reschedule attempt", extra=summary(record))

    def _accept(
        self,
        key: LedgerKey,
        source: str,
        command: RescheduleCommand,
        *,
        notify: bool,
    ) -> dict[str, Any]:
        """Async: send the order, then take the key straight to its 202 with the queued record (two
        round trips in all, and one for the quotas). A key that was not free keeps its answer; the
        order just sent then has no record, and the worker drops it (and its backlog place is freed)."""
        reschedule_id, queued_at = self._new_id(), utc_now()
        try:
            order = self._send(
                key, source, command, reschedule_id, queued_at, Mode.ASYNC, notify=notify, wait=0
            )
            answer, record, expires_at = self._queued(order, command, attempts=0, wait=0, last_error=None)
            personal = command.personal()
            taken = self._ledger.accept_queued(
                key, answer, record, now=self._clock(), expires_at=expires_at, personal=personal
            )
            if isinstance(taken, Claim):  # a stale content-keyed success, taken over: queue this one
                self._ledger.complete_queued(taken, answer, record, expires_at=expires_at, personal=personal)
        except (KeyInProgress, KeyReused, LedgerUnavailable) as exc:
            self._leave_backlog(key, source)
            raise self.refuse(source, _key_refusal(exc), command) from None
        except RelayError:
            self._leave_backlog(key, source)
            raise
        if isinstance(taken, Answered):
            if taken.answer.get("status") != QUEUED:  # a finished request's repeat: not in the queue
                self._leave_backlog(key, source)
            return self._replay(taken.answer, source, command, Mode.ASYNC)
        logger.info("reschedule queued", extra=summary(record))
        return answer

    def _enqueue(
        self,
        claim: Claim,
        source: str,
        command: RescheduleCommand,
        reschedule_id: str,
        queued_at: datetime,
        *,
        notify: bool,
        last_error: RelayError,
        quotas: SourceQuotas | None,
    ) -> dict[str, Any]:
        """Auto: the provider cannot take it now. Send the order, then complete the key with the 202.
        Raises QuotaExceeded when the source's backlog is full (the provider's failure is the answer)."""
        if self._counters is not None and quotas is not None:
            self._counters.enter_backlog(source, claim.key.item_id, quotas=quotas, now=self._clock())
        attempts = 1
        if last_error.code in DEFERRED_CODES:
            # Paced: the call never went out, so it is no attempt; it goes when the bucket has a slot.
            attempts, wait, error = 0, last_error.retry_after or 1, None
        else:
            at_least = getattr(last_error, "wait_at_least", None) or last_error.retry_after
            wait = retry_wait(attempts, self._settings.delivery_base_delay_seconds, at_least=at_least)
            error = last_error
        try:
            order = self._send(
                claim.key, source, command, reschedule_id, queued_at, Mode.AUTO, notify=notify, wait=wait
            )
        except QueueUnavailable:
            self._leave_backlog(claim.key, source)
            raise
        answer, record, expires_at = self._queued(
            order, command, attempts=attempts, wait=wait, last_error=error
        )
        try:
            self._ledger.complete_queued(
                claim, answer, record, expires_at=expires_at, personal=command.personal()
            )
        except LedgerUnavailable as exc:
            # Sent, but not stored as accepted: the worker drops a message without its record.
            self._ledger.release_quietly(claim)
            self._leave_backlog(claim.key, source)
            raise self.refuse(source, _key_refusal(exc), command) from None
        logger.info("reschedule queued", extra=summary(record))
        return answer

    def _leave_backlog(self, key: LedgerKey, source: str) -> None:
        if self._counters is not None:
            self._counters.leave_backlog(source, key.item_id)

    def _send(  # noqa: PLR0917 - the order's fields
        self,
        key: LedgerKey,
        source: str,
        command: RescheduleCommand,
        reschedule_id: str,
        queued_at: datetime,
        mode: Mode,
        *,
        notify: bool,
        wait: int,
    ) -> DeliveryOrder:
        """One SQS call: the order the worker delivers. An async request refused here is recorded."""
        if self._queue is None:
            raise not_configured("no delivery queue is configured.")
        order = DeliveryOrder(
            reschedule_id=reschedule_id,
            source=source,
            mode=mode.value,  # type: ignore[arg-type]
            idempotency_record=key.item_id,
            queued_at=queued_at,
            # The personal fields stay out of the queue: the ledger keeps them with the key.
            command=command.without_personal(),
            personal=bool(command.personal()),
            notify=notify,
        )
        try:
            self._queue.send(order.model_dump_json(), delay_seconds=wait)
        except QueueUnavailable as error:
            if mode is Mode.AUTO:
                raise  # the provider's failure is the answer
            raise self.refuse(source, error, command) from None
        return order

    def _queued(
        self,
        order: DeliveryOrder,
        command: RescheduleCommand,
        *,
        attempts: int,
        wait: int,
        last_error: RelayError | None,
    ) -> tuple[dict[str, Any], AttemptRecord, int]:
        """The 202 answer, the queued record, and how long the key must answer repeats."""
        next_attempt_at = order.queued_at + timedelta(seconds=wait)
        delivery = Delivery(
            mode=order.mode,
            queued_at=order.queued_at,
            idempotency_record=order.idempotency_record,
            attempts=attempts,
            next_attempt_at=next_attempt_at,
            last_error=last_error.code if last_error else None,
            last_error_detail=last_error.detail if last_error else None,
            # Auto, after a lost answer no read settled: the worker reads the booking before sending.
            unsettled=last_error is not None and self._step.unsettled(command, last_error),
        )
        record = attempt_record(
            reschedule_id=order.reschedule_id,
            source=order.source,
            attempted_at=order.queued_at,
            retention_days=self._settings.record_retention_days,
            outcome=Queued(),
            command=command,
            delivery=delivery,
        )
        # The key outlives the request's maximum age: a repeat never finds it free while it may run.
        queued_for = self._settings.delivery_max_age_seconds + QUEUED_KEY_MARGIN_SECONDS
        expires_at = int(order.queued_at.timestamp()) + max(
            queued_for, self._settings.idempotency_ttl_seconds
        )
        return queued_answer(order.reschedule_id, command, next_attempt_at), record, expires_at

    def _notify(self, notify: bool, source: str, record: AttemptRecord) -> None:
        """The outcome is final (the provider answered): queue its callback when the source has one."""
        if notify and self._callbacks is not None:
            self._callbacks.notify(source, record)

    def _record(
        self,
        reschedule_id: str,
        source: str,
        outcome: Outcome,
        *,
        command: RescheduleCommand | None = None,
        attempted_at: datetime | None = None,
        booking: Booking | None = None,
    ) -> AttemptRecord:
        return attempt_record(
            reschedule_id=reschedule_id,
            source=source,
            attempted_at=attempted_at or utc_now(),
            retention_days=self._settings.record_retention_days,
            outcome=outcome,
            command=command,
            booking=booking,
        )

    # -- refusals, dry runs and spam ----------------------------------------------------------------

    def refuse(
        self,
        source: str,
        error: RelayError,
        command: RescheduleCommand | None = None,
        *,
        booking: Booking | None = None,
    ) -> RelayError:
        """Record a refused request of a known caller (its reason; no body, no personal data).

        `booking`, when the command could not be built but its booking is known, puts the refusal
        in that booking's history. Returns the error, now carrying the record's id, to raise.
        A source refused the provider or account is kept out of that booking's history: its record
        names no booking (its refusals must not bury the owner's records, issue 23).
        """
        if error.code in NOT_ALLOWED_CODES:
            command, booking = None, None
        reschedule_id = self._new_id()
        error.extra["reschedule_id"] = reschedule_id
        self._save_record(
            self._record(reschedule_id, source, Failed(error), command=command, booking=booking)
        )
        return error

    def dry_run(
        self, command: RescheduleCommand, *, source: str, idempotency_key: str | None
    ) -> dict[str, Any]:
        """Checked as live (the key's format too); no lock, no provider call; recorded as `validated`."""
        self._key(source, command, idempotency_key)
        request = self._adapters[command.provider].build_request(self._step.latest(command))  # as live would
        reschedule_id = self._new_id()
        self._save_record(self._record(reschedule_id, source, Validated(), command=command))
        return dry_run_answer(reschedule_id, command, request)

    def record_spam(self, source: str, booking: Booking) -> str:
        """A form post that filled the honeypot: recorded without personal data, no provider called."""
        reschedule_id = self._new_id()
        self._save_record(self._record(reschedule_id, source, Spam(), booking=booking))
        return reschedule_id

    def _save_record(self, record: AttemptRecord | Mapping[str, Any]) -> None:
        try:
            self._records.put(record)
        except RecordWriteFailed as exc:
            # The outcome stands (the booking may have moved); this line is where an operator finds it.
            logger.error(
                "reschedule attempt NOT recorded", extra={"outcome": summary(record), "error": str(exc)}
            )
            return
        logger.info("reschedule attempt recorded", extra=summary(record))


def _over_rate(retry_after: int) -> RelayError:
    return over_quota(
        "This source has sent as many new requests this minute as its quota allows; retry after Retry-After.",
        "quota_requests_per_minute",
        retry_after,
    )


def _over_moves(retry_after: int) -> RelayError:
    return over_quota(
        "This booking was moved as often today (UTC) as this source's quota allows; retry after Retry-After.",
        "quota_moves_per_booking_per_day",
        retry_after,
    )


def _over_backlog(retry_after: int) -> RelayError:
    return over_quota(
        "This source has as many requests waiting in the queue as its quota allows; retry after Retry-After.",
        "quota_queued_backlog",
        retry_after,
    )


# Each quota (relay/ports.py SourceQuotas) and its 429 (docs/callers.md "Quotas").
_QUOTA_REFUSALS = {
    "requests_per_minute": _over_rate,
    "moves_per_booking_per_day": _over_moves,
    "queued_backlog": _over_backlog,
}


def _over_quota(exc: QuotaExceeded) -> RelayError:
    return _QUOTA_REFUSALS[exc.quota](exc.retry_after)


def _key_refusal(exc: Exception) -> RelayError:
    """What a caller is told when its key could not be taken (or its 202 not stored)."""
    if isinstance(exc, KeyInProgress):
        return conflict(
            "The same request is already being processed; try again in a moment.",
            "in_progress",
            retry_after=IN_PROGRESS_RETRY_AFTER_SECONDS,
        )
    if isinstance(exc, KeyReused):
        return unprocessable(
            "This Idempotency-Key was already used with a different request; use a new key.",
            "idempotency_key_reused",
            "Idempotency key reused",
        )
    logger.warning("idempotency store unavailable", extra={"error": str(exc)})
    return unavailable(
        "The relay's storage is unavailable; try again shortly.",
        "storage_unavailable",
        STORAGE_RETRY_AFTER_SECONDS,
    )


def _seconds_until(instant: object) -> int:
    """Seconds from now until an ISO instant (at least 1): a queued request's Retry-After."""
    try:
        when = datetime.fromisoformat(str(instant))
    except ValueError:
        return IN_PROGRESS_RETRY_AFTER_SECONDS
    return max(IN_PROGRESS_RETRY_AFTER_SECONDS, int((when - utc_now()).total_seconds()) + 1)
