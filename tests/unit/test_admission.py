"""Admission through the sources reader, with an in-memory fake of the secret store (its port)."""

from __future__ import annotations

import time
from typing import Any, cast

import pytest

from local.seed import DEMO_SOURCES, ZAPIER_DEMO, registry
from relay.callers.admission import admit, identify
from relay.callers.registry import SourcesReader
from relay.errors import RelayError
from tests.unit.fakes import FakeSecrets

NAME = "reschedule-relay/sources"
ZAPIER = ZAPIER_DEMO
AUTH = {"authorization": f"Bearer {ZAPIER.api_key}", "content-type": "application/json"}


def _reader(raw: dict[str, Any]) -> tuple[SourcesReader, FakeSecrets]:
    secrets = FakeSecrets({NAME: raw})
    return SourcesReader(cast("Any", secrets), NAME), secrets


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
