"""Small in-memory fakes of the use case's ports, for unit tests of the service and of admission.

Each keeps the contract of the real component it stands for (tests/integration runs the real ones):
the idempotency store refuses a live key like DynamoDB's conditional put, and writes the staged
attempt record together with the lock's completion or release, like RecordingPersistenceLayer.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyItemAlreadyExistsError,
    IdempotencyItemNotFoundError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord

from relay.command import RescheduleCommand
from relay.dal.idempotency import MoveScope, Staged
from relay.dal.records import RecordWriteFailed
from relay.errors import not_configured
from relay.providers.base import Credentials, OutboundRequest, Provider
from relay.providers.client import ProviderError, ProviderReply


class FakeSecrets:
    """SecretStore's port: JSON secrets by name; a missing one is `not_configured`, like the real one."""

    def __init__(self, values: Mapping[str, dict[str, Any]]) -> None:
        self.values = dict(values)
        self.reads: list[tuple[str, bool]] = []
        self.prefetches: list[str] = []  # the names asked for before a run (read later by get_json)

    def prefetch(self, name: str) -> None:
        self.prefetches.append(name)

    def get_json(self, name: str, *, force_fetch: bool = False) -> dict[str, Any]:
        self.reads.append((name, force_fetch))
        if name not in self.values:
            raise not_configured(f"secret {name!r} does not exist.")
        return self.values[name]


class FakeRecords:
    """RecordStore's port: attempts by id; `fail` makes writes fail like an unavailable table."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.fail = False

    def put(self, record: Mapping[str, Any]) -> None:
        if self.fail:
            raise RecordWriteFailed("ClientError")
        if record["reschedule_id"] in self.items:
            raise RecordWriteFailed("ConditionalCheckFailedException")
        self.items[record["reschedule_id"]] = {k: v for k, v in record.items() if v is not None}

    def get(self, reschedule_id: str) -> dict[str, Any] | None:
        return self.items.get(reschedule_id)

    def latest_booking_id(self, provider: str, booking_id: str) -> str | None:
        """The id the newest successful move of this booking created, following the chain."""
        latest = booking_id
        for _ in range(len(self.items) + 1):
            moves = [
                r
                for r in self.items.values()
                if (r.get("provider"), r.get("booking_id"), r.get("status"))
                == (provider, latest, "succeeded")
                and r.get("new_booking_id")
            ]
            if not moves:
                break
            latest = max(moves, key=lambda r: str(r["attempted_at"]))["new_booking_id"]
        return latest if latest != booking_id else None


class FakeIdempotencyStore(BasePersistenceLayer):
    """The idempotency table in memory, with RecordingPersistenceLayer's staging slot."""

    def __init__(self, records: FakeRecords) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.records = records
        self.items: dict[str, DataRecord] = {}
        self.staged: Staged | None = None

    def begin(self, scope: MoveScope | None = None) -> None:
        self.staged = None
        self.scope = scope

    def stage(self, record: Mapping[str, Any], answer: object) -> None:
        self.staged = Staged(record, answer)

    def _write_staged(self) -> None:
        if self.staged is not None and not self.staged.written:
            self.records.put(self.staged.record)
            self.staged.written = True

    def _get_record(self, idempotency_key: str) -> DataRecord:
        if idempotency_key not in self.items:
            raise IdempotencyItemNotFoundError
        return self.items[idempotency_key]

    def _put_record(self, data_record: DataRecord) -> None:
        old = self.items.get(data_record.idempotency_key)
        now = time.time()
        if old is not None and old.expiry_timestamp is not None and old.expiry_timestamp >= now:
            in_progress_over = (
                old.status == "INPROGRESS"
                and old.in_progress_expiry_timestamp is not None
                and old.in_progress_expiry_timestamp < now * 1000
            )
            if not in_progress_over:
                # As the DynamoDB layer does with the item its failed conditional put returns.
                self._validate_payload(data_payload=data_record, stored_data_record=old)
                raise IdempotencyItemAlreadyExistsError(old_data_record=old)
        self.items[data_record.idempotency_key] = data_record

    def _update_record(self, data_record: DataRecord) -> None:
        self.items[data_record.idempotency_key] = data_record
        self._write_staged()

    def _delete_record(self, data_record: DataRecord) -> None:
        self.items.pop(data_record.idempotency_key, None)
        self._write_staged()


class FakeProviders:
    """ProviderClient's port: answers from a script (a reply body, or a ProviderError), recording calls."""

    def __init__(self, *answers: dict[str, Any] | ProviderError) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, OutboundRequest, str]] = []

    def move(
        self,
        provider: Provider,
        command: RescheduleCommand,
        credentials: Credentials,
        deadline: Any = None,
        *,
        pacing: Any = None,
    ) -> ProviderReply:
        # Recorded as (provider, the request its adapter builds, the Authorization header's value).
        request = provider.build_request(command)
        self.calls.append(
            (provider.name, request, credentials.headers()["Authorization"].removeprefix("Bearer "))
        )
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, ProviderError):
            raise answer
        return ProviderReply(200, answer, 12)
