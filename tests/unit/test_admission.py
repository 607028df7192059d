"""Admission through the sources reader, with an in-memory fake of the secret store (its port)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from pydantic import ValidationError

from local.seed import DEMO_SOURCES, ZAPIER_DEMO, registry
from relay.callers.admission import admit, identify
from relay.callers.registry import SourcesReader
from relay.errors import RelayError
from relay.settings import REGISTRY_NEW_KEY_PROMISE_SECONDS, REGISTRY_REFUSAL_PROMISE_SECONDS, settings_from
from tests.unit.fakes import FakeSecrets

NAME = "reschedule-relay/sources"
ZAPIER = ZAPIER_DEMO
RECHECK_SECONDS = 5.0
AUTH = {"authorization": f"Bearer {ZAPIER.api_key}", "content-type": "application/json"}


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _CachingSecrets(FakeSecrets):
    """The store's cache as the reader sees it within a max age: the first value until a forced read."""

    def __init__(self, values: dict[str, dict[str, Any]]) -> None:
        super().__init__(values)
        self.cached: dict[str, dict[str, Any]] = {}

    def get_json(self, name: str, *, force_fetch: bool = False) -> dict[str, Any]:
        if force_fetch or name not in self.cached:
            self.cached[name] = super().get_json(name, force_fetch=force_fetch)
        else:
            self.reads.append((name, False))
        return self.cached[name]


def _reader(raw: dict[str, Any], clock: _Clock | None = None) -> tuple[SourcesReader, FakeSecrets]:
    """A reader over the store's port; with `clock`, over a store that caches like the real one."""
    secrets = FakeSecrets({NAME: raw}) if clock is None else _CachingSecrets({NAME: raw})
    reader = SourcesReader(secrets, NAME, recheck_seconds=RECHECK_SECONDS, clock=clock or _Clock())
    return reader, secrets


def _forced(secrets: FakeSecrets) -> int:
    return sum(1 for _, force_fetch in secrets.reads if force_fetch)


def test_the_registry_is_parsed_once_per_value_the_secret_store_hands_back() -> None:
    reader, secrets = _reader(registry(DEMO_SOURCES))
    first, second = reader.current(), reader.current()
    assert first is second
    assert len(secrets.reads) == 2  # read through the store's cache every time, parsed once
    secrets.values[NAME] = registry(DEMO_SOURCES[1:])  # a new value (the cache expired): parsed again
    assert reader.current() is not first


def test_a_key_removed_from_the_registry_is_refused_once_the_new_value_is_read() -> None:
    reader, secrets = _reader(registry(DEMO_SOURCES))
    admitted = admit(reader.current(), AUTH, b'{"provider": "iclosed"}', now=time.time())
    assert admitted.caller.name == ZAPIER.name
    secrets.values[NAME] = registry(DEMO_SOURCES[1:])
    with pytest.raises(RelayError) as refused:
        identify(reader.current(), AUTH, now=time.time())
    assert (refused.value.status, refused.value.code) == (401, "invalid_api_key")


def test_a_registry_of_the_wrong_shape_is_not_configured_and_names_no_value() -> None:
    reader, _ = _reader({"sources": {"x": {"kind": "api_key", "api_key_sha256": ["sandbox-not-a-hash"]}}})
    with pytest.raises(RelayError) as broken:
        reader.current()
    assert (broken.value.status, broken.value.code) == (503, "not_configured")
    assert "sandbox-not-a-hash" not in broken.value.detail


def test_an_unknown_key_rereads_the_registry_once_so_a_source_added_since_the_cache_is_admitted() -> None:
    # Given a container whose cached registry predates the zapier source
    clock = _Clock()
    reader, secrets = _reader(registry(DEMO_SOURCES[1:]), clock)
    reader.current()
    secrets.values[NAME] = registry(DEMO_SOURCES)  # the operator adds it
    # When its key arrives, the cached registry refuses it and the reader reads the secret again
    caller = reader.admit(lambda r: identify(r, AUTH, now=time.time()))
    # Then it is admitted, at the cost of one read that bypasses the cache
    assert caller.name == ZAPIER.name
    assert _forced(secrets) == 1


def test_unknown_keys_reread_the_registry_at_most_once_per_recheck_interval() -> None:
    clock = _Clock()
    reader, secrets = _reader(registry(DEMO_SOURCES[1:]), clock)
    for _ in range(50):  # a flood of wrong keys within one interval
        with pytest.raises(RelayError) as refused:
            reader.admit(lambda r: identify(r, AUTH, now=time.time()))
        assert refused.value.code == "invalid_api_key"
    assert _forced(secrets) == 1
    clock.now += RECHECK_SECONDS - 0.01
    with pytest.raises(RelayError):
        reader.admit(lambda r: identify(r, AUTH, now=time.time()))
    assert _forced(secrets) == 1
    clock.now += 0.01
    with pytest.raises(RelayError):
        reader.admit(lambda r: identify(r, AUTH, now=time.time()))
    assert _forced(secrets) == 2


def test_other_refusals_never_reread_the_registry() -> None:
    reader, secrets = _reader(registry(DEMO_SOURCES), _Clock())
    malformed = {"authorization": "Basic sandbox"}
    with pytest.raises(RelayError) as refused:
        reader.admit(lambda r: identify(r, malformed, now=time.time()))
    assert refused.value.code == "malformed_credentials"
    assert _forced(secrets) == 0


def test_the_registry_settings_keep_their_promises_by_default() -> None:
    # A revoked source is refused within 60 s in every container, a new key works within 15 s.
    settings = settings_from({"IDEMPOTENCY_TABLE_NAME": "idem", "RESCHEDULES_TABLE_NAME": "recs"})
    assert settings.registry_max_age_seconds <= REGISTRY_REFUSAL_PROMISE_SECONDS == 60
    assert 0 < settings.registry_recheck_seconds <= REGISTRY_NEW_KEY_PROMISE_SECONDS == 15
    # Shorter than the provider credentials' cache: the registry is what revocation changes.
    assert settings.registry_max_age_seconds < settings.secrets_max_age_seconds
    # And an operator cannot configure them past the promises.
    for name, value in (("REGISTRY_MAX_AGE_SECONDS", "61"), ("REGISTRY_RECHECK_SECONDS", "16")):
        with pytest.raises(ValidationError):
            settings_from({"IDEMPOTENCY_TABLE_NAME": "idem", "RESCHEDULES_TABLE_NAME": "recs", name: value})
