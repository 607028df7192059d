"""Wiring: the service and what it needs, built once per container (or per test stack)."""

from __future__ import annotations

from typing import Any

from relay.dal.idempotency import RecordingPersistenceLayer
from relay.dal.records import RecordStore
from relay.dal.secrets import SecretStore
from relay.outbound import ProviderClient
from relay.service import RescheduleService
from relay.settings import Settings


def build_service(settings: Settings, *, dynamodb: Any, secretsmanager: Any) -> RescheduleService:
    records = RecordStore(dynamodb, settings.reschedules_table_name)
    return RescheduleService(
        settings,
        secrets=SecretStore(secretsmanager, settings.secrets_max_age_seconds),
        records=records,
        persistence=RecordingPersistenceLayer(
            table_name=settings.idempotency_table_name, records=records, client=dynamodb
        ),
        providers=ProviderClient(settings),
    )
