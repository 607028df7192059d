"""Wiring: the adapters, the service and the sources reader, built once per container (or per test stack)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from relay.callers.registry import SourcesReader
from relay.dal.callbacks import CallbackState
from relay.dal.deliveries import DeliveryStore
from relay.dal.idempotency import RecordingPersistenceLayer
from relay.dal.pacing import PaceBucket
from relay.dal.queue import DeliveryQueue
from relay.dal.records import RecordStore
from relay.dal.secrets import Prefetch, SecretStore, sources_secret_name
from relay.providers import PROVIDERS
from relay.providers.base import Provider
from relay.providers.client import ProviderClient
from relay.reschedule.booking_times import BookingTimes
from relay.reschedule.callbacks import Callbacks
from relay.reschedule.delivery import Deliveries
from relay.reschedule.service import RescheduleService
from relay.settings import Settings
from relay.webhooks.sender import WebhookSender

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_secretsmanager import SecretsManagerClient


@dataclass(frozen=True)
class Relay:
    """Everything a door needs: the use case and who may call it."""

    settings: Settings
    service: RescheduleService
    sources: SourcesReader
    # The queue-side use case (worker deliveries, cancels); None when no delivery queue is configured.
    deliveries: Deliveries | None = None
    # Outcome callbacks (queued by both doors, sent by the worker); None without a delivery queue.
    callbacks: Callbacks | None = None
    # The hosted page's "your booking is now on ..." (relay/reschedule/booking_times.py).
    booking_times: BookingTimes | None = None


def build_adapters(settings: Settings) -> dict[str, Provider]:
    """Each registered adapter with the base URL its setting names."""
    return {name: adapter.from_settings(settings) for name, adapter in PROVIDERS.items()}


def build(
    settings: Settings,
    *,
    dynamodb: DynamoDBClient,
    secretsmanager: SecretsManagerClient,
    sqs: Callable[[], Any] | None = None,
    prefetched: Prefetch | None = None,
) -> Relay:
    """`sqs` makes the SQS client (called at the first SQS call, only when a delivery queue is configured);
    `prefetched` is a secret already being read (the HTTP door's caller registry, relay/dal/secrets.py)."""
    secrets = SecretStore(secretsmanager, settings.secrets_max_age_seconds, prefetched=prefetched)
    sources = SourcesReader(secrets, sources_secret_name(settings.secrets_prefix))
    records = RecordStore(dynamodb, settings.reschedules_table_name)
    adapters = build_adapters(settings)
    queue = None
    callbacks = None
    if settings.delivery_queue_url and sqs is not None:
        queue = DeliveryQueue(sqs, settings.delivery_queue_url, settings.dead_letter_queue_url)
        callbacks = Callbacks(
            settings,
            queue=queue,
            state=CallbackState(dynamodb, settings.idempotency_table_name),
            sender=WebhookSender(settings.callback_timeout_seconds),
            # Read at each attempt: a changed registry entry (new URL, rotated secret) applies at once.
            targets=lambda source: sources.current().callback_target(source),
        )
    providers = ProviderClient(
        settings, adapters, bucket=PaceBucket(dynamodb, settings.idempotency_table_name)
    )
    service = RescheduleService(
        settings,
        secrets=secrets,
        records=records,
        persistence=RecordingPersistenceLayer(
            table_name=settings.idempotency_table_name, records=records, client=dynamodb
        ),
        # The pacing buckets live in the idempotency table (no table or permission of their own).
        providers=providers,
        adapters=adapters,
        queue=queue,
        callbacks=callbacks,
    )
    deliveries = None
    if queue is not None:
        store = DeliveryStore(dynamodb, settings.idempotency_table_name, records)
        deliveries = Deliveries(settings, service=service, store=store, queue=queue, callbacks=callbacks)
    booking_times = BookingTimes(
        secrets_prefix=settings.secrets_prefix, secrets=secrets, providers=providers, adapters=adapters
    )
    return Relay(settings, service, sources, deliveries, callbacks, booking_times)
