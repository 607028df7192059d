"""The use case: reschedule once per idempotency key, record every attempt, answer from the record."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
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

from relay import intake
from relay.dal.idempotency import RecordingPersistenceLayer
from relay.dal.records import RecordStore, RecordWriteFailed, booking_key
from relay.dal.secrets import SecretStore
from relay.deadline import Deadline
from relay.errors import RelayError, invalid_field, not_configured, not_found
from relay.models import RescheduleCommand, normalise, parse_request
from relay.outbound import ProviderClient, ProviderError
from relay.sources import Caller, Registry, parse_registry
from relay.times import utc_now

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from relay.settings import Settings

logger = Logger(child=True)

IDEMPOTENCY_KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")
IN_PROGRESS_RETRY_AFTER_SECONDS = 1
STORAGE_RETRY_AFTER_SECONDS = 2
IDEMPOTENCY_KEY_PREFIX = "reschedule"


def _mark_replayed(response: Any, idempotent_data: DataRecord) -> Any:
    return {**response, "replayed": True} if isinstance(response, dict) else response


@dataclass
class _Outcome:
    """What `_run` did, kept for the case where Powertools cannot store it afterwards."""

    record: dict[str, Any]
    answer: dict[str, Any] | RelayError  # the success result, or the failure to raise


_outcome: ContextVar[_Outcome | None] = ContextVar("outcome", default=None)


class RescheduleService:
    def __init__(
        self,
        settings: Settings,
        *,
        secrets: SecretStore,
        records: RecordStore,
        persistence: RecordingPersistenceLayer,
        providers: ProviderClient,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self._settings = settings
        self._secrets = secrets
        self._records = records
        self._persistence = persistence
        self._providers = providers
        self._new_id = new_id
        # The registry parsed from the secret value it came from (the cache returns that same object).
        self._registry: tuple[dict[str, Any], Registry] | None = None
        self.idempotency = IdempotencyConfig(
            event_key_jmespath="key",
            payload_validation_jmespath="payload",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=settings.idempotency_ttl_seconds,
            hash_function="sha256",
            response_hook=_mark_replayed,
        )
        self._run_once = idempotent_function(
            data_keyword_argument="data",
            persistence_store=persistence,
            config=self.idempotency,
            key_prefix=IDEMPOTENCY_KEY_PREFIX,
        )(self._run)

    # -- callers -----------------------------------------------------------------------------------

    def sources(self) -> Registry:
        """The sources registry, read through the container's secret cache (relay/admission.py uses it).

        Parsed once per fetched value: the cache hands back the same object until it is refreshed.
        """
        raw = self._secrets.get_json(f"{self._settings.secrets_prefix}/sources")
        if self._registry is None or self._registry[0] is not raw:
            self._registry = (raw, parse_registry(raw))
        return self._registry[1]

    # -- POST /v1/reschedules ----------------------------------------------------------------------

    def reschedule(
        self,
        caller: Caller,
        fields: dict[str, Any],
        *,
        idempotency_key: str | None,
        context: LambdaContext | None,
    ) -> dict[str, Any]:
        """Validate, then run once per key. Every refusal of an authenticated caller is recorded."""
        command: RescheduleCommand | None = None
        try:
            canonical, names = intake.canonicalise(fields)
            request = parse_request(canonical, names)
            command = normalise(request, self._settings, caller.allowed_providers, names)
            caller.authorise(command.provider, command.account)
            data = self._idempotency_data(caller, command, idempotency_key)
            if context is not None:
                self.idempotency.register_lambda_context(context)
            deadline = Deadline.for_invocation(context, self._settings.deadline_safety_margin_seconds)
            return self._execute(data, deadline)
        except RelayError as error:
            if "reschedule_id" not in error.extra:
                self._record_refusal(caller.name, command, error)
            raise

    def _execute(self, data: dict[str, Any], deadline: Deadline) -> dict[str, Any]:
        _outcome.set(None)
        self._persistence.clear()
        try:
            result: dict[str, Any] = self._run_once(data=data, deadline=deadline)
        except IdempotencyAlreadyInProgressError:
            raise RelayError(
                "The same request is already being processed; try again in a moment.",
                409,
                "in_progress",
                "In progress",
                retry_after=IN_PROGRESS_RETRY_AFTER_SECONDS,
            ) from None
        except IdempotencyValidationError:
            raise RelayError(
                "This Idempotency-Key was already used with a different request; use a new key.",
                422,
                "idempotency_key_reused",
                "Idempotency key reused",
            ) from None
        except (IdempotencyPersistenceLayerError, IdempotencyInconsistentStateError) as exc:
            return self._storage_failed(exc)
        return result

    def _storage_failed(self, exc: Exception) -> dict[str, Any]:
        outcome = _outcome.get()
        if outcome is None:  # nothing ran: the lock could not be taken, so no provider was called
            logger.warning("idempotency store unavailable", extra={"error": type(exc).__name__})
            raise RelayError(
                "The relay's storage is unavailable; try again shortly.",
                503,
                "storage_unavailable",
                "Dependency unavailable",
                retry_after=STORAGE_RETRY_AFTER_SECONDS,
            ) from None
        # The provider call happened; only storing its outcome failed. The outcome stands: try the
        # record once more on its own, and failing that, log it where an operator will find it.
        self._save_record(outcome.record)
        if isinstance(outcome.answer, RelayError):
            raise outcome.answer from None
        return outcome.answer

    def _idempotency_data(
        self, caller: Caller, command: RescheduleCommand, idempotency_key: str | None
    ) -> dict[str, Any]:
        command_json = command.model_dump(mode="json")
        if idempotency_key is None:
            material = json.dumps(command.key_material(), sort_keys=True, separators=(",", ":"))
            key = "command:" + hashlib.sha256(material.encode()).hexdigest()
            payload: dict[str, Any] = command.key_material()
        else:
            if not IDEMPOTENCY_KEY_PATTERN.match(idempotency_key):
                raise invalid_field("Idempotency-Key", "Use 1 to 255 visible ASCII characters.")
            key = "header:" + idempotency_key
            payload = command_json
        # Scoped by source: two sources can never collide on a key.
        return {
            "key": f"{caller.name}|{key}",
            "source": caller.name,
            "payload": payload,
            "command": command_json,
        }

    def _run(self, data: dict[str, Any], deadline: Deadline) -> dict[str, Any]:
        """Runs at most once per key at a time; raising releases the lock so a retry runs again."""
        command = RescheduleCommand.model_validate(data["command"])
        reschedule_id = self._new_id()
        base = self._record(reschedule_id, data["source"], command, utc_now())
        try:
            reply = self._call_provider(command, deadline)
        except RelayError as error:
            record = base | self._failure(error)
            error.extra.setdefault("reschedule_id", reschedule_id)
            self._finish(_Outcome(record, error))
            raise
        result = {
            "reschedule_id": reschedule_id,
            "status": "rescheduled",
            "provider": command.provider,
            "account": command.account,
            "booking_id": command.booking_id,
            "start": command.local(command.start).isoformat(),
            "end": command.local(command.end).isoformat() if command.end else None,
            "timezone": command.timezone,
            "replayed": False,
            "provider_result": command.adapter.summarise(reply.body),
        }
        record = base | {
            "status": "succeeded",
            "http_status": 200,
            "provider_status": reply.status,
            "latency_ms": reply.latency_ms,
            "provider_result": result["provider_result"],
        }
        self._finish(_Outcome(record, result))
        return result

    def _finish(self, outcome: _Outcome) -> None:
        """Hand the record to the store, which writes it with the lock's completion or release."""
        _outcome.set(outcome)
        self._persistence.attach(outcome.record)
        logger.info("reschedule attempt", extra=_summary(outcome.record))

    def _call_provider(self, command: RescheduleCommand, deadline: Deadline) -> Any:
        adapter = command.adapter
        request = adapter.build_request(command)
        try:
            return self._providers.send(adapter, request, self._provider_token(command), deadline)
        except ProviderError as error:
            if error.code != "provider_auth_failed":
                raise
        # Refused credentials: the token may have been rotated since it was cached. Read it again, once.
        logger.warning(
            "provider refused the cached token; reading it again", extra={"provider": adapter.name}
        )
        return self._providers.send(
            adapter, request, self._provider_token(command, force_fetch=True), deadline
        )

    def _provider_token(self, command: RescheduleCommand, *, force_fetch: bool = False) -> str:
        name = f"{self._settings.secrets_prefix}/providers/{command.provider}/{command.account}"
        secret = self._secrets.get_json(name, force_fetch=force_fetch)
        token = secret.get("api_key")
        if not isinstance(token, str) or not token.strip():
            raise not_configured(f"secret {name!r} has no 'api_key'.")
        for warning in command.adapter.warnings(token):
            logger.warning(warning, extra={"provider": command.provider, "account": command.account})
        return token

    def _record(
        self, reschedule_id: str, source: str, command: RescheduleCommand | None, attempted_at: datetime
    ) -> dict[str, Any]:
        record: dict[str, Any] = {
            "reschedule_id": reschedule_id,
            "source": source,
            "attempted_at": attempted_at.isoformat(timespec="milliseconds"),
            "expires_at": int(
                (attempted_at + timedelta(days=self._settings.record_retention_days)).timestamp()
            ),
        }
        if command is not None:
            record |= {
                "provider": command.provider,
                "account": command.account,
                "booking_id": command.booking_id,
                "booking_key": booking_key(command.provider, command.booking_id),
                "requested_start": command.local(command.start).isoformat(),
                "requested_end": command.local(command.end).isoformat() if command.end else None,
                "timezone": command.timezone,
            }
        return record

    @staticmethod
    def _failure(error: RelayError) -> dict[str, Any]:
        failure: dict[str, Any] = {
            "status": "failed",
            "http_status": error.status,
            "reason": error.code,
            "detail": error.detail,
        }
        if isinstance(error, ProviderError):
            failure |= {"provider_status": error.provider_status, "latency_ms": error.latency_ms}
        return failure

    def refused(self, caller: Caller, error: RelayError) -> None:
        """Record a refusal that happened before the request reached `reschedule` (e.g. a broken body)."""
        self._record_refusal(caller.name, None, error)

    def _record_refusal(self, source: str, command: RescheduleCommand | None, error: RelayError) -> None:
        """A refused request of a known caller: recorded with its reason (no body, no personal data)."""
        reschedule_id = self._new_id()
        error.extra.setdefault("reschedule_id", reschedule_id)
        self._save_record(self._record(reschedule_id, source, command, utc_now()) | self._failure(error))

    def _save_record(self, record: dict[str, Any]) -> None:
        try:
            self._records.put(record)
        except RecordWriteFailed as exc:
            # The outcome stands (the booking may have moved); this line is where an operator finds it.
            logger.error(
                "reschedule attempt NOT recorded", extra={"outcome": _summary(record), "error": str(exc)}
            )
            return
        logger.info("reschedule attempt recorded", extra=_summary(record))

    # -- spam ---------------------------------------------------------------------------------------

    def record_spam(self, caller: Caller, *, provider: str, account: str, booking_id: str) -> str:
        """A form post that filled the honeypot: recorded without personal data, no provider called."""
        reschedule_id = self._new_id()
        attempted_at = utc_now()
        self._save_record(
            {
                "reschedule_id": reschedule_id,
                "source": caller.name,
                "provider": provider,
                "account": account,
                "booking_id": booking_id,
                "booking_key": booking_key(provider, booking_id),
                "status": "rejected_spam",
                "http_status": 202,
                "reason": "honeypot",
                "attempted_at": attempted_at.isoformat(timespec="milliseconds"),
                "expires_at": int(
                    (attempted_at + timedelta(days=self._settings.record_retention_days)).timestamp()
                ),
            }
        )
        return reschedule_id

    # -- GET /v1/reschedules/{id} ------------------------------------------------------------------

    def get(self, caller: Caller, reschedule_id: str) -> dict[str, Any]:
        record = self._records.get(reschedule_id) if _looks_like_id(reschedule_id) else None
        if record is None or record.get("source") != caller.name:  # another source's record: not found
            raise not_found("No reschedule with this id.", "reschedule_not_found")
        return public_view(record)


def _summary(record: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "reschedule_id",
        "source",
        "provider",
        "account",
        "booking_id",
        "requested_start",
        "status",
        "reason",
        "http_status",
        "provider_status",
        "latency_ms",
    )
    return {k: record[k] for k in keys if record.get(k) is not None}


def _looks_like_id(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


_PUBLIC_FIELDS = (
    "reschedule_id",
    "status",
    "provider",
    "account",
    "booking_id",
    "requested_start",
    "requested_end",
    "timezone",
    "attempted_at",
    "http_status",
    "reason",
    "detail",
    "provider_status",
    "latency_ms",
    "provider_result",
)


def public_view(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record[k] for k in _PUBLIC_FIELDS if k in record}
