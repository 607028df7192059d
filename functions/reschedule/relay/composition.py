"""Wiring: the adapters, the service and the sources reader, built once per container (or per test stack)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from relay.callers.registry import SourcesReader
from relay.dal.idempotency import RecordingPersistenceLayer
from relay.dal.records import RecordStore
from relay.dal.secrets import SecretStore
from relay.providers import PROVIDERS
from relay.providers.base import Provider
from relay.providers.client import ProviderClient
from relay.reschedule.service import RescheduleService
from relay.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_secretsmanager import SecretsManagerClient


@dataclass(frozen=True)
class Relay:
    """Everything a door needs: the use case and who may call it."""

    settings: Settings
    service: RescheduleService
    sources: SourcesReader


def build_adapters(settings: Settings) -> dict[str, Provider]:
    """Each registered adapter with the base URL its setting names."""
    return {name: adapter.from_settings(settings) for name, adapter in PROVIDERS.items()}


def build(settings: Settings, *, dynamodb: DynamoDBClient, secretsmanager: SecretsManagerClient) -> Relay:
    secrets = SecretStore(secretsmanager, settings.secrets_max_age_seconds)
    records = RecordStore(dynamodb, settings.reschedules_table_name)
    adapters = build_adapters(settings)
    service = RescheduleService(
        settings,
        secrets=secrets,
        records=records,
        persistence=RecordingPersistenceLayer(
            table_name=settings.idempotency_table_name, records=records, client=dynamodb
        ),
        providers=ProviderClient(settings, adapters),
        adapters=adapters,
    )
    return Relay(settings, service, SourcesReader(secrets, f"{settings.secrets_prefix}/sources"))
