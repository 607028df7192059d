"""Everything the relay reads from its environment, validated once at cold start.

The same names are used in AWS (set by template.yaml) and locally (set by the local stack);
AWS endpoints for local emulators come from boto3's own `AWS_ENDPOINT_URL_<SERVICE>` variables,
so the relay has no "if local" branch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl

from relay.addresses import is_loopback_host
from relay.errors import DEFAULT_PROBLEM_DOCS_URL


def _https_unless_loopback(url: HttpUrl) -> HttpUrl:
    """A provider's token travels with every call: https, or plain http to this machine (the sandboxes)."""
    if url.scheme != "https" and not is_loopback_host(url.host or ""):
        raise ValueError("a provider base URL is https (plain http only to a loopback host)")
    return url


ProviderUrl = Annotated[HttpUrl, AfterValidator(_https_unless_loopback)]

# What the registry settings promise an operator (docs/callers.md): their bounds.
REGISTRY_REFUSAL_PROMISE_SECONDS = 60
REGISTRY_NEW_KEY_PROMISE_SECONDS = 15
# The callback function's Timeout (30 s in template.yaml) holds the longest POST and its bookkeeping.
MAX_CALLBACK_TIMEOUT_SECONDS = 20


DEFAULT_LINK_MAX_LIFETIME_DAYS = 30


def _time_format(value: int) -> int:
    if value not in (12, 24):
        raise ValueError("DEFAULT_TIME_FORMAT is 12 or 24")
    return value


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    idempotency_table_name: str = Field(min_length=3)
    reschedules_table_name: str = Field(min_length=3)
    secrets_prefix: str = Field(default="reschedule-relay", pattern=r"^[A-Za-z0-9/_+=.@-]{1,256}$")
    # One base URL per provider: each adapter names its field and production default
    # (relay.providers; tests/unit/test_provider_registry.py holds the two together).
    iclosed_base_url: ProviderUrl = HttpUrl("https://public.api.iclosed.io")
    novacal_base_url: ProviderUrl = HttpUrl("https://api.novacal.io")
    calcom_base_url: ProviderUrl = HttpUrl("https://api.cal.com")
    acuity_base_url: ProviderUrl = HttpUrl("https://acuityscheduling.com")
    # Cal.com's `cal-api-version` header: the versions whose reschedule body the adapter sends.
    calcom_api_version: Literal["2024-08-13", "2026-02-25"] = "2024-08-13"
    # NovaCal needs an end: when the caller gives neither end nor duration, the booking lasts this long.
    default_duration_minutes: int = Field(default=30, ge=1, le=1440)
    # NovaCal's time_format when the caller gives none.
    default_time_format: Annotated[int, AfterValidator(_time_format)] = 24
    record_retention_days: int = Field(default=90, ge=1, le=3650)
    # How long a success is kept as the answer to repeats of the same key.
    idempotency_ttl_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    # Cached provider credentials are fetched again after this long (the registry has its own below).
    secrets_max_age_seconds: int = Field(default=300, ge=0, le=3600)
    # ---- the sources registry (relay/callers/registry.py) ----
    # The cached registry is read again after this long: a revoked or narrowed source is refused
    # within it in every container (the promise is 60 s, hence the bound).
    registry_max_age_seconds: int = Field(default=30, ge=0, le=REGISTRY_REFUSAL_PROMISE_SECONDS)
    # A key, signature or link source the cached registry does not know re-reads it once, at most
    # this often per container: a new source works within it, and unknown keys cannot make every
    # request a Secrets Manager call (the promise for a new key is 15 s, hence the bound).
    registry_recheck_seconds: float = Field(default=5.0, ge=0, le=REGISTRY_NEW_KEY_PROMISE_SECONDS)
    provider_connect_timeout_seconds: float = Field(default=3.0, gt=0, le=10)
    provider_read_timeout_seconds: float = Field(default=10.0, gt=0, le=25)
    # Kept back from the invocation's remaining time to write the outcome and answer before the timeout.
    deadline_safety_margin_seconds: float = Field(default=2.0, ge=0.5, le=10)
    # ---- durable delivery ----
    # The delivery queue and its dead-letter queue (template.yaml); empty: no queue, every request is sync.
    delivery_queue_url: str = ""
    dead_letter_queue_url: str = ""
    # A queued reschedule not delivered this long after it was accepted is failed (and parked in the DLQ).
    delivery_max_age_seconds: int = Field(default=86400, ge=10, le=7 * 24 * 3600)
    # The retry schedule's first wait; the later ones are multiples of it (5 s -> 15 s, 1 min, ... 1 h).
    delivery_base_delay_seconds: int = Field(default=5, ge=1, le=60)
    # A queued move is never delivered later than this before its new start (the slot is too near
    # to move to): it fails `start_passed`; an async or auto request already inside it is refused.
    delivery_min_lead_seconds: int = Field(default=900, ge=0, le=7 * 24 * 3600)
    # ---- the circuit per provider account (relay/reschedule/circuit.py) ----
    # While an account's provider keeps failing, one queued attempt probes it this often; the rest
    # of its backlog waits. Each probe is one provider call.
    circuit_probe_interval_seconds: int = Field(default=10, ge=1, le=300)
    # ---- pacing ----
    # Longest a sync (or auto) request waits for its account's pacing slot before 429 (auto: queued).
    pace_sync_wait_seconds: float = Field(default=2.0, ge=0, le=10)
    # Longest the worker waits in-process for a slot; a longer wait defers the message instead.
    pace_worker_wait_seconds: float = Field(default=20.0, ge=0, le=50)
    # ---- outcome callbacks ----
    # Longest a callback POST may take in total, whatever the receiver does (Standard Webhooks
    # senders use about 15 s); the callback function's Timeout in template.yaml leaves room for it.
    callback_timeout_seconds: float = Field(default=15.0, gt=0, le=MAX_CALLBACK_TIMEOUT_SECONDS)
    # The callback queue and its dead-letter queue (template.yaml): outcome events wait there for
    # the callback function, never on the delivery queue. Empty: callbacks share the delivery queue
    # (a deployment from before the split; docs/deploying.md).
    callback_queue_url: str = ""
    callback_dead_letter_queue_url: str = ""
    # POSTs to one source's callback URL at once, across every callback worker (a DynamoDB slot
    # each): a slow receiver holds at most this many of the callback function's workers.
    callback_source_concurrency: int = Field(default=2, ge=1, le=10)
    # ---- quotas (the per-source ones are in the registry: relay/callers/registry.py `Quotas`) ----
    # A signed link may expire at most this long after it is minted; a longer one is refused at
    # minting (relayctl links mint) and at use.
    link_max_lifetime_days: int = Field(default=DEFAULT_LINK_MAX_LIFETIME_DAYS, ge=1, le=365)
    # Callbacks to a loopback host, plain http included (the local stack's sink); in AWS, off:
    # every address a callback host resolves to must then be public (relay/webhooks/destinations.py).
    callback_allow_http_loopback: bool = False
    # ---- answers ----
    # Where a problem's `type` points: this page of the docs, the reason code as its fragment.
    problem_docs_url: str = Field(default=DEFAULT_PROBLEM_DOCS_URL, min_length=1, max_length=512)


def link_max_lifetime_seconds(settings: Settings) -> int:
    return settings.link_max_lifetime_days * 86400


def settings_from(environ: Mapping[str, str]) -> Settings:
    """Settings from an environment mapping: each field is the upper-cased variable of its name."""
    values = {name: environ[name.upper()] for name in Settings.model_fields if name.upper() in environ}
    return Settings.model_validate(values)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return settings_from(os.environ)
