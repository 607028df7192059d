"""The use case: reschedule once per idempotency key, record every attempt, answer from the record.

Both doors call it with a typed RescheduleCommand, the calling source's name, the idempotency key
and the deadline; it knows nothing of HTTP or queues. Its writes are in plain sight: refusals are
recorded by `refuse`, a run's outcome is staged with `self._persistence.stage` and written with the
idempotency record's completion (one transaction), or on its own when that store fails.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyInconsistentStateError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from relay.command import RescheduleCommand
from relay.dal.idempotency import MoveScope
from relay.dal.pacing import pace_key
from relay.dal.queue import QueueUnavailable
from relay.dal.records import RecordStore, RecordWriteFailed
from relay.errors import (
    RelayError,
    conflict,
    invalid_field,
    not_configured,
    not_found,
    unavailable,
    unprocessable,
)
from relay.providers.client import ProviderClient, ProviderError, ProviderReply
from relay.providers.pacing import Pacing
from relay.reschedule.attempts import (
    QUEUED,
    AttemptRecord,
    Booking,
    Delivery,
    Failed,
    Outcome,
    Queued,
    Spam,
    Succeeded,
    Validated,
    attempt_record,
    public_view,
    queued_answer,
    result_of,
    summary,
)
from relay.reschedule.dry_run import dry_run_answer
from relay.reschedule.history import booking_history
from relay.reschedule.modes import DEFERRED_CODES, Mode, queueable
from relay.reschedule.schedule import QUEUED_KEY_MARGIN_SECONDS, DeliveryOrder, retry_wait
from relay.times import utc_now

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord

    from relay.dal.idempotency import RecordingPersistenceLayer, Staged
    from relay.dal.queue import DeliveryQueue
    from relay.dal.secrets import SecretStore
    from relay.deadline import Deadline
    from relay.providers.base import Credentials, Provider
    from relay.reschedule.callbacks import Callbacks
    from relay.settings import Settings

logger = Logger(child=True)

IDEMPOTENCY_KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")
IN_PROGRESS_RETRY_AFTER_SECONDS = 1
STORAGE_RETRY_AFTER_SECONDS = 2
IDEMPOTENCY_KEY_PREFIX = "reschedule"


class IdempotentRun(BaseModel):
    """The idempotent function's data: the scoped key, what must match on a repeat, and the command."""

    model_config = ConfigDict(frozen=True)

    key: str
    source: str
    payload: dict[str, Any]
    # Not in the dump Powertools copies and hashes per call (it reads only `key` and `payload`):
    # the function is handed this object itself, command included.
    command: RescheduleCommand = Field(exclude=True)
    # The source has an outcome callback: a final outcome is queued for it (not part of the key).
    notify: bool = False


class _InvocationClock:
    """Powertools sizes the in-progress lock by the invocation's remaining time; the deadline knows it."""

    def __init__(self, deadline: Deadline) -> None:
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return int((self._deadline.invocation_remaining() or 0.0) * 1000)


def _mark_replayed(response: Any, idempotent_data: DataRecord) -> Any:  # noqa: ARG001 - Powertools' hook
    return {**response, "replayed": True} if isinstance(response, dict) else response


class RescheduleService:
    def __init__(
        self,
        settings: Settings,
        *,
        secrets: SecretStore,
        records: RecordStore,
        persistence: RecordingPersistenceLayer,
        providers: ProviderClient,
        adapters: Mapping[str, Provider],
        queue: DeliveryQueue | None = None,
        callbacks: Callbacks | None = None,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self._settings = settings
        self._secrets = secrets
        self._records = records
        self._persistence = persistence
        self._providers = providers
        self._adapters = adapters
        self._new_id = new_id
        self._queue = queue
        self._callbacks = callbacks
        self.idempotency = IdempotencyConfig(
            event_key_jmespath="key",
            payload_validation_jmespath="payload",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=settings.idempotency_ttl_seconds,
            hash_function="sha256",
            response_hook=_mark_replayed,
        )
        self._run_once = idempotent_function(
            data_keyword_argument="run",
            persistence_store=persistence,
            config=self.idempotency,
            key_prefix=IDEMPOTENCY_KEY_PREFIX,
        )(self._run)
        # Same key prefix and payload check: a key is one request whichever door or mode took it.
        self._queue_once = idempotent_function(
            data_keyword_argument="run",
            persistence_store=persistence,
            config=self.idempotency,
            key_prefix=IDEMPOTENCY_KEY_PREFIX,
        )(self._queue_run)

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
    ) -> dict[str, Any]:
        """Run once per key. A refusal before the run is recorded here; the run records its own outcome.

        `async` queues the command; `auto` runs it and queues it when the provider cannot take it now.
        The answer is then the queued answer (`status: queued`), also for repeats while it is queued.
        `notify`: the source has an outcome callback; the run's final outcome is queued for it.
        """
        try:
            run = self._idempotent_run(source, command, idempotency_key, notify=notify)
        except RelayError as error:
            raise self.refuse(source, error, command) from None
        if deadline.invocation_remaining() is not None:
            # Powertools reads only get_remaining_time_in_millis() of the context it is given.
            self.idempotency.register_lambda_context(_InvocationClock(deadline))  # type: ignore[arg-type]
        # Without an Idempotency-Key, a stored answer stands only while it is the booking's last move.
        self._persistence.begin(
            MoveScope(source, command.provider, command.booking_id, idempotency_key is None)
        )
        try:
            if mode is Mode.ASYNC:
                result: dict[str, Any] = self._queue_once(run=run, deadline=deadline)
            else:
                # On a cold cache the account's secret is read while the lock is taken (relay/dal/secrets.py).
                self._secrets.prefetch(self._credentials_name(command))
                result = self._run_once(run=run, deadline=deadline, mode=mode)
        except IdempotencyAlreadyInProgressError:
            raise self.refuse(
                source,
                conflict(
                    "The same request is already being processed; try again in a moment.",
                    "in_progress",
                    retry_after=IN_PROGRESS_RETRY_AFTER_SECONDS,
                ),
                command,
            ) from None
        except IdempotencyValidationError:
            raise self.refuse(
                source,
                unprocessable(
                    "This Idempotency-Key was already used with a different request; use a new key.",
                    "idempotency_key_reused",
                    "Idempotency key reused",
                ),
                command,
            ) from None
        except (IdempotencyPersistenceLayerError, IdempotencyInconsistentStateError) as exc:
            return self._storage_failed(source, command, exc)
        if result.get("status") == QUEUED and mode is Mode.SYNC:
            # A sync caller wants the outcome, which the queue has not reached yet: still in progress.
            raise self.refuse(
                source,
                conflict(
                    "The same request is queued for delivery; try again later.",
                    "queued",
                    retry_after=_seconds_until(result.get("next_attempt_at")),
                ),
                command,
            ) from None
        return result

    def _storage_failed(self, source: str, command: RescheduleCommand, exc: Exception) -> dict[str, Any]:
        staged: Staged | None = self._persistence.staged
        queued = (
            staged is not None and isinstance(staged.answer, dict) and staged.answer.get("status") == QUEUED
        )
        if queued:
            # Sent, but not stored as accepted: answer 503; the worker drops a message without its record.
            self._release_quietly()
        if staged is None or queued:  # no provider was called (the lock failed, or the request was queued)
            logger.warning("idempotency store unavailable", extra={"error": type(exc).__name__})
            raise self.refuse(
                source,
                unavailable(
                    "The relay's storage is unavailable; try again shortly.",
                    "storage_unavailable",
                    STORAGE_RETRY_AFTER_SECONDS,
                ),
                command,
            ) from None
        # The provider call happened; only storing its outcome failed. The outcome stands: try the
        # record once more on its own, and failing that, log it where an operator will find it.
        if not staged.written:
            self._save_record(staged.record)
        if isinstance(staged.answer, RelayError):
            raise staged.answer from None
        answer: dict[str, Any] = staged.answer  # type: ignore[assignment]
        return answer

    def _release_quietly(self) -> None:
        staged = self._persistence.staged
        key = staged.record.get("idempotency_record") if staged is not None else None
        if key:
            try:
                self._persistence.release(str(key))
            except Exception as exc:  # noqa: BLE001 - storage is failing already: the lock expires with the invocation
                logger.warning("queued key not released", extra={"error": type(exc).__name__})

    def _idempotent_run(
        self, source: str, command: RescheduleCommand, idempotency_key: str | None, *, notify: bool = False
    ) -> IdempotentRun:
        if idempotency_key is None:
            material = json.dumps(command.key_material(), sort_keys=True, separators=(",", ":"))
            key = "command:" + hashlib.sha256(material.encode()).hexdigest()
            payload: dict[str, Any] = command.key_material()
        else:
            if not IDEMPOTENCY_KEY_PATTERN.match(idempotency_key):
                raise invalid_field("Idempotency-Key", "Use 1 to 255 visible ASCII characters.")
            key = "header:" + idempotency_key
            payload = command.model_dump(mode="json")
        # Scoped by source: two sources can never collide on a key.
        return IdempotentRun(
            key=f"{source}|{key}", source=source, payload=payload, command=command, notify=notify
        )

    def _run(self, run: IdempotentRun, deadline: Deadline, mode: Mode = Mode.SYNC) -> dict[str, Any]:
        """Runs at most once per key at a time; raising releases the lock so a retry runs again."""
        command = run.command
        reschedule_id = self._new_id()
        attempted_at = utc_now()
        try:
            reply = self._call_provider(self._latest(command), deadline)
        except RelayError as error:
            if mode is Mode.AUTO and self._queue is not None and queueable(error):
                try:
                    return self._enqueue(run, reschedule_id, attempted_at, mode=Mode.AUTO, last_error=error)
                except QueueUnavailable:
                    logger.warning("auto delivery could not queue; answering the provider's failure")
            error.extra["reschedule_id"] = reschedule_id
            failed = self._record(
                reschedule_id, run.source, Failed(error), command=command, attempted_at=attempted_at
            )
            self._stage(failed, error)
            self._notify(run, failed)
            raise
        adapter = self._adapters[command.provider]
        provider_result = adapter.summarise(reply.body)
        new_booking_id = adapter.new_booking_id(reply.body)
        result = result_of(reschedule_id, command, provider_result, new_booking_id)
        outcome = Succeeded(reply.status, reply.latency_ms, provider_result, new_booking_id)
        succeeded = self._record(
            reschedule_id, run.source, outcome, command=command, attempted_at=attempted_at
        )
        self._stage(succeeded, result)
        self._notify(run, succeeded)
        return result

    def _notify(self, run: IdempotentRun, record: AttemptRecord) -> None:
        """The outcome is final (the provider answered): queue its callback when the source has one."""
        if run.notify and self._callbacks is not None:
            self._callbacks.notify(run.source, record)

    def _queue_run(self, run: IdempotentRun, deadline: Deadline) -> dict[str, Any]:
        """Async: queue the command now; the worker delivers it (same key, same lock, same records)."""
        reschedule_id = self._new_id()
        attempted_at = utc_now()
        try:
            return self._enqueue(run, reschedule_id, attempted_at, mode=Mode.ASYNC)
        except QueueUnavailable as error:
            error.extra["reschedule_id"] = reschedule_id
            record = self._record(
                reschedule_id, run.source, Failed(error), command=run.command, attempted_at=attempted_at
            )
            self._stage(record, error)
            raise

    def _enqueue(
        self,
        run: IdempotentRun,
        reschedule_id: str,
        queued_at: datetime,
        *,
        mode: Mode,
        last_error: RelayError | None = None,
    ) -> dict[str, Any]:
        """Send the order (one SQS call), then stage the queued record and answer: they are written with
        the key's completion, which keeps the 202 as the key's answer until the worker replaces it."""
        if self._queue is None:
            raise not_configured("no delivery queue is configured.")
        if last_error is not None and last_error.code in DEFERRED_CODES:
            # Paced: the call never went out, so it is no attempt; it goes when the bucket has a slot.
            attempts, wait, last_error = 0, last_error.retry_after or 1, None
        else:
            attempts = 0 if last_error is None else 1
            wait = 0
        if last_error is not None:
            wait = retry_wait(
                attempts,
                self._settings.delivery_base_delay_seconds,
                at_least=getattr(last_error, "wait_at_least", None) or last_error.retry_after,
            )
        idempotency_record = self._persistence.record_key(run.model_dump())
        order = DeliveryOrder(
            reschedule_id=reschedule_id,
            source=run.source,
            mode=mode.value,  # type: ignore[arg-type]
            idempotency_record=idempotency_record,
            queued_at=queued_at,
            command=run.command,
            notify=run.notify,
        )
        self._queue.send(order.model_dump_json(), delay_seconds=wait)
        next_attempt_at = queued_at + timedelta(seconds=wait)
        delivery = Delivery(
            mode=order.mode,
            queued_at=queued_at,
            idempotency_record=idempotency_record,
            attempts=attempts,
            next_attempt_at=next_attempt_at,
            last_error=last_error.code if last_error else None,
            last_error_detail=last_error.detail if last_error else None,
        )
        record = attempt_record(
            reschedule_id=reschedule_id,
            source=run.source,
            attempted_at=queued_at,
            retention_days=self._settings.record_retention_days,
            outcome=Queued(),
            command=run.command,
            delivery=delivery,
        )
        answer = queued_answer(reschedule_id, run.command, next_attempt_at)
        expires_at = (
            int(queued_at.timestamp()) + self._settings.delivery_max_age_seconds + QUEUED_KEY_MARGIN_SECONDS
        )
        self._persistence.stage(
            record,
            answer,
            expires_at=max(expires_at, int(queued_at.timestamp()) + self._settings.idempotency_ttl_seconds),
        )
        logger.info("reschedule queued", extra=summary(record))
        return answer

    def _stage(self, record: AttemptRecord, answer: dict[str, Any] | RelayError) -> None:
        """The outcome's write: staged here, written with the lock's completion or release."""
        self._persistence.stage(record, answer)
        logger.info("reschedule attempt", extra=summary(record))

    def call_provider(self, command: RescheduleCommand, deadline: Deadline) -> ProviderReply:
        """One delivery attempt for the queue's worker: the same adapters, token and retries as sync."""
        return self._call_provider(
            self._latest(command), deadline, pace_wait=self._settings.pace_worker_wait_seconds
        )

    def success_answer(
        self, reschedule_id: str, command: RescheduleCommand, reply: ProviderReply
    ) -> tuple[dict[str, Any], Succeeded]:
        """What a sync success answers and records, for a delivery the worker made."""
        adapter = self._adapters[command.provider]
        provider_result = adapter.summarise(reply.body)
        new_booking_id = adapter.new_booking_id(reply.body)
        result = result_of(reschedule_id, command, provider_result, new_booking_id)
        return result, Succeeded(reply.status, reply.latency_ms, provider_result, new_booking_id)

    def _latest(self, command: RescheduleCommand) -> RescheduleCommand:
        """The command aimed at the booking's latest id, following the ids this relay recorded.

        Cal.com gives a booking a new id on every move; a link or zap holding an earlier id still
        means the same booking, so the move goes to the id the last recorded move created.
        """
        if not self._adapters[command.provider].booking_id_changes:
            return command
        latest = self._records.latest_booking_id(command.provider, command.booking_id)
        if latest is None or latest == command.booking_id:
            return command
        return command.model_copy(update={"booking_id": latest})

    def _call_provider(
        self, command: RescheduleCommand, deadline: Deadline, *, pace_wait: float | None = None
    ) -> ProviderReply:
        """`pace_wait`: the longest this door waits for the account's pacing slot (default: sync's)."""
        adapter = self._adapters[command.provider]
        credentials = self._provider_credentials(command)
        rate = (
            adapter.delivery_rate_per_minute
            if credentials.rate_per_minute is None
            else credentials.rate_per_minute
        )
        pacing = Pacing(
            key=pace_key(command.provider, command.account),
            rate_per_minute=rate,
            max_wait_seconds=self._settings.pace_sync_wait_seconds if pace_wait is None else pace_wait,
        )
        try:
            return self._providers.move(adapter, command, credentials, deadline, pacing=pacing)
        except ProviderError as error:
            if error.code != "provider_auth_failed":
                raise
        # Refused credentials: the token may have been rotated since it was cached. Read it again, once.
        logger.warning(
            "provider refused the cached token; reading it again", extra={"provider": adapter.name}
        )
        return self._providers.move(
            adapter, command, self._provider_credentials(command, force_fetch=True), deadline, pacing=pacing
        )

    def _credentials_name(self, command: RescheduleCommand) -> str:
        return f"{self._settings.secrets_prefix}/providers/{command.provider}/{command.account}"

    def _provider_credentials(self, command: RescheduleCommand, *, force_fetch: bool = False) -> Credentials:
        """The account's secret, in the shape its adapter declares (naming missing keys, never values)."""
        name = self._credentials_name(command)
        secret = self._secrets.get_json(name, force_fetch=force_fetch)
        try:
            credentials = self._adapters[command.provider].credentials.model_validate(secret)
        except ValidationError as exc:
            keys = sorted({str(e["loc"][0]) for e in exc.errors(include_input=False) if e["loc"]})
            raise not_configured(f"secret {name!r} lacks a valid {', '.join(map(repr, keys))}.") from None
        for warning in credentials.warnings():
            logger.warning(warning, extra={"provider": command.provider, "account": command.account})
        return credentials

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

    # -- refusals and spam --------------------------------------------------------------------------

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
        """
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
        try:
            self._idempotent_run(source, command, idempotency_key)
        except RelayError as error:
            raise self.refuse(source, error, command) from None
        request = self._adapters[command.provider].build_request(self._latest(command))  # as live would
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

    # -- GET /v1/reschedules/{id} ------------------------------------------------------------------

    def get(self, source: str, reschedule_id: str) -> dict[str, Any]:
        return public_view(self.get_stored(source, reschedule_id))

    def get_stored(self, source: str, reschedule_id: str) -> dict[str, Any]:
        """The whole stored record of this source's attempt (private fields too: not for answers)."""
        record = self._records.get(reschedule_id) if _looks_like_id(reschedule_id) else None
        if record is None or record.get("source") != source:  # another source's record: not found
            raise not_found("No reschedule with this id.", "reschedule_not_found")
        return record

    # -- GET /v1/bookings/{provider}/{booking_id}/reschedules -------------------------------------

    def history(
        self, source: str, provider: str, booking_id: str, *, limit: str | None, cursor: str | None
    ) -> dict[str, Any]:
        return booking_history(self._records, source, provider, booking_id, limit=limit, cursor=cursor)


def _seconds_until(instant: object) -> int:
    """Seconds from now until an ISO instant (at least 1): a queued request's Retry-After."""
    try:
        when = datetime.fromisoformat(str(instant))
    except ValueError:
        return IN_PROGRESS_RETRY_AFTER_SECONDS
    return max(IN_PROGRESS_RETRY_AFTER_SECONDS, int((when - utc_now()).total_seconds()) + 1)


def _looks_like_id(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False
