"""The use case: reschedule once per idempotency key, record every attempt, answer from the record."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import timedelta
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
from relay.dal.records import RecordStore, RecordWriteFailed, booking_key
from relay.dal.secrets import SecretStore
from relay.errors import RelayError, invalid_field, not_found
from relay.models import RescheduleCommand, normalise, parse_request
from relay.outbound import ProviderClient, ProviderError
from relay.sources import Caller, Registry, authenticate, parse_registry
from relay.times import utc_now

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
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


class RescheduleService:
    def __init__(
        self,
        settings: Settings,
        *,
        secrets: SecretStore,
        records: RecordStore,
        persistence: BasePersistenceLayer,
        providers: ProviderClient,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self._settings = settings
        self._secrets = secrets
        self._records = records
        self._providers = providers
        self._new_id = new_id
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

    def authenticate(self, headers: Mapping[str, str]) -> Caller:
        raw = self._secrets.get_json(f"{self._settings.secrets_prefix}/sources")
        return authenticate(parse_registry(raw), headers)

    def sources(self) -> Registry:
        """The sources registry, read through the container's secret cache (relay/admission.py uses it)."""
        return parse_registry(self._secrets.get_json(f"{self._settings.secrets_prefix}/sources"))

    # -- POST /v1/reschedules ----------------------------------------------------------------------

    def reschedule(
        self,
        caller: Caller,
        fields: dict[str, Any],
        *,
        idempotency_key: str | None,
        context: LambdaContext | None,
    ) -> dict[str, Any]:
        canonical, names = intake.canonicalise(fields)
        request = parse_request(canonical, names)
        command = normalise(request, self._settings, caller.allowed_providers, names)
        caller.authorise(command.provider, command.account)
        data = self._idempotency_data(caller, command, idempotency_key)
        if context is not None:
            self.idempotency.register_lambda_context(context)
        try:
            result: dict[str, Any] = self._run_once(data=data)
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
            logger.warning("idempotency store unavailable", extra={"error": type(exc).__name__})
            raise RelayError(
                "The relay's storage is unavailable; try again shortly.",
                503,
                "storage_unavailable",
                "Dependency unavailable",
                retry_after=STORAGE_RETRY_AFTER_SECONDS,
            ) from None
        return result

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

    def _run(self, data: dict[str, Any]) -> dict[str, Any]:
        """Runs at most once per key at a time; raising releases the lock so a retry runs again."""
        command = RescheduleCommand.model_validate(data["command"])
        source = data["source"]
        reschedule_id = self._new_id()
        adapter = command.adapter
        attempted_at = utc_now()
        try:
            token = self._provider_token(command)
            request = adapter.build_request(command)
            reply = self._providers.send(adapter, request, token)
        except RelayError as error:
            self._record_failure(reschedule_id, source, command, attempted_at, error)
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
            "provider_result": adapter.summarise(reply.body),
        }
        self._save_record(
            self._record(reschedule_id, source, command, attempted_at)
            | {
                "status": "succeeded",
                "http_status": 200,
                "provider_status": reply.status,
                "latency_ms": reply.latency_ms,
                "provider_result": result["provider_result"],
            }
        )
        return result

    def _provider_token(self, command: RescheduleCommand) -> str:
        name = f"{self._settings.secrets_prefix}/providers/{command.provider}/{command.account}"
        secret = self._secrets.get_json(name)
        token = secret.get("api_key")
        if not isinstance(token, str) or not token.strip():
            raise RelayError(
                f"The relay is not configured: secret {name!r} has no 'api_key'.",
                503,
                "not_configured",
                "Relay not configured",
                retry_after=60,
            )
        for warning in command.adapter.warnings(token):
            logger.warning(warning, extra={"provider": command.provider, "account": command.account})
        return token

    def _record(
        self, reschedule_id: str, source: str, command: RescheduleCommand, attempted_at: Any
    ) -> dict[str, Any]:
        return {
            "reschedule_id": reschedule_id,
            "source": source,
            "provider": command.provider,
            "account": command.account,
            "booking_id": command.booking_id,
            "booking_key": booking_key(command.provider, command.booking_id),
            "requested_start": command.local(command.start).isoformat(),
            "requested_end": command.local(command.end).isoformat() if command.end else None,
            "timezone": command.timezone,
            "attempted_at": attempted_at.isoformat(timespec="milliseconds"),
            "expires_at": int(
                (attempted_at + timedelta(days=self._settings.record_retention_days)).timestamp()
            ),
        }

    def _record_failure(
        self,
        reschedule_id: str,
        source: str,
        command: RescheduleCommand,
        attempted_at: Any,
        error: RelayError,
    ) -> None:
        record = self._record(reschedule_id, source, command, attempted_at) | {
            "status": "failed",
            "http_status": error.status,
            "reason": error.code,
            "detail": error.detail,
        }
        if isinstance(error, ProviderError):
            record |= {"provider_status": error.provider_status, "latency_ms": error.latency_ms}
        self._save_record(record)
        error.extra.setdefault("reschedule_id", reschedule_id)

    def _save_record(self, record: dict[str, Any]) -> None:
        summary = {
            k: record.get(k)
            for k in (
                "reschedule_id",
                "source",
                "provider",
                "account",
                "booking_id",
                "requested_start",
                "status",
                "reason",
                "provider_status",
                "latency_ms",
            )
        }
        try:
            self._records.put(record)
        except RecordWriteFailed as exc:
            # The outcome stands (the booking may have moved); this line is where an operator finds it.
            logger.error("reschedule attempt NOT recorded", extra={"outcome": summary, "error": str(exc)})
            return
        logger.info("reschedule attempt recorded", extra=summary)

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
