"""Caller authentication against the sources registry: no I/O."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from relay.callers.registry import (
    SignedLinkSource,
    StandardWebhooksSource,
    authenticate,
    hash_api_key,
    parse_registry,
)
from relay.errors import RelayError

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


# -- the registry's kinds ----------------------------------------------------------------------

WHSEC = "whsec_" + base64.b64encode(b"sandbox-signing-secret-0001").decode()
FORM: dict[str, Any] = {
    "kind": "signed_link",
    "link_secrets": ["sandbox-link-secret-unit-0001-xxxxxxxx"],
    "providers": {"novacal": ["default"]},
    "origins": ["https://www.example.test", "http://127.0.0.1:8000"],
    "honeypot": "website",
    "form_url": "https://www.example.test/reschedule",
    "success_url": "https://www.example.test/done?lang=en",
    "error_url": "https://www.example.test/failed",
}


def test_every_kind_parses_and_is_found_by_kind() -> None:
    registry = parse_registry(
        {
            "sources": {
                "zap": {"kind": "api_key", "api_key_sha256": [hash_api_key("sandbox-k")], "providers": {}},
                "hook": {"kind": "standard_webhooks", "secrets": [WHSEC], "providers": {}},
                "form": FORM,
            }
        }
    )
    assert [name for name, _ in registry.of_kind(StandardWebhooksSource)] == ["hook"]
    assert [name for name, _ in registry.of_kind(SignedLinkSource)] == ["form"]
    assert registry.browser_origins == {"https://www.example.test", "http://127.0.0.1:8000"}
    ((_, hook),) = registry.of_kind(StandardWebhooksSource)
    assert hook.signing_keys() == [b"sandbox-signing-secret-0001"]


def test_api_key_authentication_ignores_other_kinds() -> None:
    registry = parse_registry({"sources": {"form": FORM}})
    with pytest.raises(RelayError) as caught:
        authenticate(registry, {"x-api-key": FORM["link_secrets"][0]})
    assert caught.value.code == "invalid_api_key"


@pytest.mark.parametrize(
    "source",
    [
        {"kind": "standard_webhooks", "secrets": ["c2FuZGJveC1zaWduaW5nLXNlY3JldC0wMDAx"], "providers": {}},
        {"kind": "standard_webhooks", "secrets": ["whsec_not*base64"], "providers": {}},
        {
            "kind": "standard_webhooks",
            "secrets": ["whsec_" + base64.b64encode(b"short").decode()],
            "providers": {},
        },
        {"kind": "standard_webhooks", "secrets": [], "providers": {}},
        FORM | {"link_secrets": ["sandbox-too-short"]},
        FORM | {"origins": ["*"]},
        FORM | {"origins": ["https://www.example.test/"]},
        FORM | {"origins": ["https://WWW.example.test"]},
        FORM | {"origins": ["null"]},
        FORM | {"origins": []},
        FORM | {"honeypot": "booking_id"},
        FORM | {"honeypot": "token"},
        FORM | {"success_url": "javascript:alert(1)"},
        FORM | {"kind": "cookie"},
        {k: v for k, v in FORM.items() if k != "form_url"},
    ],
)
def test_malformed_sources_make_the_relay_not_configured_without_echoing_secrets(
    source: dict[str, Any],
) -> None:
    with pytest.raises(RelayError) as caught:
        parse_registry({"sources": {"s": source}})
    assert (caught.value.status, caught.value.code) == (503, "not_configured")
    problem = json.dumps(caught.value.problem())
    assert "sandbox" not in problem
    assert "c2FuZGJveC" not in problem


def test_a_secret_shared_by_two_sources_is_refused() -> None:
    hook = {"kind": "standard_webhooks", "secrets": [WHSEC], "providers": {}}
    unpadded = {"kind": "standard_webhooks", "secrets": [WHSEC.rstrip("=")], "providers": {}}
    with pytest.raises(RelayError):
        parse_registry({"sources": {"a": hook, "b": unpadded}})
    with pytest.raises(RelayError):
        parse_registry({"sources": {"a": FORM, "b": FORM}})
