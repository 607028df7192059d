"""Caller authentication against the sources registry: no I/O."""

from __future__ import annotations

import pytest

from relay.errors import RelayError
from relay.sources import authenticate, hash_api_key, parse_registry

REGISTRY = parse_registry(
    {
        "sources": {
            "zap": {
                "kind": "api_key",
                "api_key_sha256": [hash_api_key("sandbox-old"), hash_api_key("sandbox-new")],
                "providers": {"iclosed": ["default", "eu"]},
            },
            "site": {
                "kind": "api_key",
                "api_key_sha256": [hash_api_key("sandbox-site")],
                "providers": {"novacal": ["default"]},
            },
        }
    }
)


@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": "Bearer sandbox-new"},
        {"authorization": "bearer sandbox-old"},
        {"x-api-key": "sandbox-new"},
    ],
)
def test_either_header_and_every_rotated_key_authenticates(headers: dict[str, str]) -> None:
    assert authenticate(REGISTRY, headers).name == "zap"


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_credentials"),
        ({"x-api-key": "  "}, "missing_credentials"),
        ({"authorization": "Basic abc"}, "malformed_credentials"),
        ({"authorization": "Bearer"}, "malformed_credentials"),
        ({"authorization": "Bearer sandbox-wrong"}, "invalid_api_key"),
        ({"x-api-key": "x" * 600}, "invalid_api_key"),
    ],
)
def test_missing_or_wrong_keys_are_401(headers: dict[str, str], code: str) -> None:
    with pytest.raises(RelayError) as caught:
        authenticate(REGISTRY, headers)
    assert (caught.value.status, caught.value.code) == (401, code)


def test_registry_stores_only_hashes() -> None:
    with pytest.raises(RelayError) as caught:
        parse_registry({"sources": {"zap": {"kind": "api_key", "api_key": "sandbox-plain", "providers": {}}}})
    assert caught.value.status == 503
    assert "sandbox-plain" not in str(caught.value.problem())


def test_authorise_by_provider_and_account() -> None:
    caller = authenticate(REGISTRY, {"x-api-key": "sandbox-old"})
    caller.authorise("iclosed", "eu")
    for provider, account, code in [
        ("novacal", "default", "provider_not_allowed"),
        ("iclosed", "us", "account_not_allowed"),
    ]:
        with pytest.raises(RelayError) as caught:
            caller.authorise(provider, account)
        assert (caught.value.status, caught.value.code) == (403, code)
