"""Wiring: the adapters, the ledger, the two use cases over one attempt step, the queries and the
sources reader, built once per container (or per test stack)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from relay.callers.registry import SourcesReader
from relay.dal.callbacks import CallbackState
from relay.dal.circuits import CircuitStore
from relay.dal.cursors import HistoryCursors
from relay.dal.ledger import Ledger
from relay.dal.pacing import PaceBucket
from relay.dal.queue import DeliveryQueue
from relay.dal.quotas import QuotaCounters
from relay.dal.records import RecordStore
from relay.dal.secrets import Prefetch, SecretStore, sources_secret_name
from relay.dal.subscriptions import SubscriptionStore
from relay.providers import PROVIDERS
from relay.providers.base import Provider
from relay.providers.client import ProviderClient
from relay.reschedule.booking_times import BookingTimes
from relay.reschedule.callbacks import Callbacks
from relay.reschedule.circuit import PROBE_LEASE_MARGIN_SECONDS, Breaker
from relay.reschedule.delivery import Deliveries
from relay.reschedule.queries import Queries
from relay.reschedule.service import RescheduleService
from relay.reschedule.step import AttemptStep
from relay.reschedule.stops import ACCOUNT_NOT_ALLOWED, SOURCE_REVOKED
from relay.reschedule.subscriptions import Subscriptions
from relay.settings import Settings
from relay.webhooks.sender import WebhookSender

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_secretsmanager import SecretsManagerClient


@dataclass(frozen=True)
class Relay:
    """Everything a door needs: the use cases, the queries, and who may call them."""

    settings: Settings
    service: RescheduleService
    queries: Queries
    sources: SourcesReader
    # The queue door's use case (worker deliveries); None when no delivery queue is configured.
    deliveries: Deliveries | None = None
    # Outcome callbacks (queued by both doors, sent by the worker); None without a delivery queue.
    callbacks: Callbacks | None = None
    # The hosted page's "your booking is now on ..." (relay/reschedule/booking_times.py).
    booking_times: BookingTimes | None = None
    # The sources' event subscriptions (REST hooks) and their attempts (recent outcomes).
    subscriptions: Subscriptions | None = None
    records: RecordStore | None = None


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
    secrets = SecretStore(secretsmanager, settings.secrets_max_age_seconds)
    sources = sources_reader(settings, secretsmanager, prefetched)
    # History cursors are items in the idempotency table (no table or permission of their own).
    records = RecordStore(
        dynamodb,
        settings.reschedules_table_name,
        cursors=HistoryCursors(dynamodb, settings.idempotency_table_name),
    )
    adapters = build_adapters(settings)
    subscriptions = build_subscriptions(settings, dynamodb=dynamodb, sources=sources)
    queue = None
    callbacks = None
    if settings.delivery_queue_url and sqs is not None:
        queue = DeliveryQueue(sqs, settings.delivery_queue_url, settings.dead_letter_queue_url)
        # Without a callback queue of their own (a deployment from before it), events share this one.
        callbacks = build_callbacks(
            settings,
            dynamodb=dynamodb,
            sources=sources,
            queue=callback_queue(settings, sqs) or queue,
            subscriptions=subscriptions,
        )
    # The pacing buckets live in the idempotency table (no table or permission of their own).
    providers = ProviderClient(
        settings, adapters, bucket=PaceBucket(dynamodb, settings.idempotency_table_name)
    )
    ledger = Ledger(dynamodb, settings.idempotency_table_name, records)
    # The circuits, like the pacing buckets, live in the idempotency table; only deliveries use them.
    breaker = Breaker(
        CircuitStore(dynamodb, settings.idempotency_table_name),
        probe_interval_seconds=settings.circuit_probe_interval_seconds,
        probe_lease_seconds=int(
            settings.provider_connect_timeout_seconds
            + settings.provider_read_timeout_seconds
            + PROBE_LEASE_MARGIN_SECONDS
        ),
    )
    step = AttemptStep(
        settings,
        secrets=secrets,
        chain=ledger,
        providers=providers,
        adapters=adapters,
        breaker=breaker,
    )
    service = RescheduleService(
        settings,
        ledger=ledger,
        records=records,
        step=step,
        adapters=adapters,
        queue=queue,
        callbacks=callbacks,
        # The quota counters live in the idempotency table too (relay/dal/quotas.py).
        counters=QuotaCounters(dynamodb, settings.idempotency_table_name),
    )
    deliveries = None
    if queue is not None:
        deliveries = Deliveries(
            settings,
            step=step,
            ledger=ledger,
            queue=queue,
            callbacks=callbacks,
            authorised=delivery_authorisation(sources),
        )
    queries = Queries(settings, records=records, ledger=ledger)
    booking_times = BookingTimes(
        secrets_prefix=settings.secrets_prefix, secrets=secrets, providers=providers, adapters=adapters
    )
    return Relay(
        settings, service, queries, sources, deliveries, callbacks, booking_times, subscriptions, records
    )


def delivery_authorisation(sources: SourcesReader) -> Callable[[str, str, str], str | None]:
    """Queued work is re-authorised at delivery against the current registry (its own freshness):
    the reason code a source may no longer make this move, or None."""

    def refusal(source: str, provider: str, account: str) -> str | None:
        entry = sources.current().sources.get(source)
        if entry is None:
            return SOURCE_REVOKED
        if account not in entry.providers.get(provider, []):
            return ACCOUNT_NOT_ALLOWED
        return None

    return refusal


def sources_reader(
    settings: Settings, secretsmanager: SecretsManagerClient, prefetched: Prefetch | None = None
) -> SourcesReader:
    """The caller registry, in a cache of its own with the freshness its settings promise (shorter
    than the provider credentials')."""
    return SourcesReader(
        SecretStore(secretsmanager, settings.registry_max_age_seconds, prefetched=prefetched),
        sources_secret_name(settings.secrets_prefix),
        recheck_seconds=settings.registry_recheck_seconds,
    )


def callback_queue(settings: Settings, sqs: Callable[[], Any]) -> DeliveryQueue | None:
    """The outcome callbacks' own queue (and its dead-letter queue), None when none is configured."""
    if not settings.callback_queue_url:
        return None
    return DeliveryQueue(sqs, settings.callback_queue_url, settings.callback_dead_letter_queue_url)


def build_subscriptions(
    settings: Settings, *, dynamodb: DynamoDBClient, sources: SourcesReader
) -> Subscriptions:
    """The sources' event subscriptions; the registry says, at each use, who may have them."""
    return Subscriptions(
        SubscriptionStore(dynamodb, settings.idempotency_table_name),
        settings,
        enabled=lambda source: sources.current().subscribes(source),
    )


def build_callbacks(
    settings: Settings,
    *,
    dynamodb: DynamoDBClient,
    sources: SourcesReader,
    queue: DeliveryQueue,
    subscriptions: Subscriptions,
) -> Callbacks:
    return Callbacks(
        settings,
        queue=queue,
        state=CallbackState(dynamodb, settings.idempotency_table_name),
        sender=WebhookSender(settings.callback_timeout_seconds),
        # Read at each attempt: a changed registry entry (new URL, rotated secret) applies at once.
        targets=lambda source: sources.current().callback_target(source),
        subscriptions=subscriptions,
    )


def build_callback_worker(
    settings: Settings,
    *,
    dynamodb: DynamoDBClient,
    secretsmanager: SecretsManagerClient,
    sqs: Callable[[], Any],
) -> Callbacks:
    """The callback function's side alone: no service, no providers (its cold start reads nothing else)."""
    queue = callback_queue(settings, sqs)
    if queue is None:
        raise RuntimeError("the callback worker needs CALLBACK_QUEUE_URL")
    sources = sources_reader(settings, secretsmanager)
    subscriptions = build_subscriptions(settings, dynamodb=dynamodb, sources=sources)
    return build_callbacks(
        settings, dynamodb=dynamodb, sources=sources, queue=queue, subscriptions=subscriptions
    )
