"""Callers ("sources"): who may call the relay, how they prove it, and what they may move.

The registry is one JSON secret, `<prefix>/sources`:

    {"sources": {"zapier-demo": {"kind": "api_key",
                                 "api_key_sha256": ["<hex sha-256 of each valid key>"],
                                 "providers": {"iclosed": ["default"], "novacal": ["default"]}}}}

Only hashes of API keys are stored; several at once allow rotation. `kind` selects the proof;
signed webhooks and signed form links are further kinds of the same registry.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from relay.errors import RelayError, forbidden, unauthenticated

SOURCE_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
MAX_API_KEY_LENGTH = 512
RETRY_AFTER_MISCONFIGURED_SECONDS = 60

Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class ApiKeySource(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["api_key"]
    api_key_sha256: Annotated[list[Sha256Hex], Field(min_length=1)]
    # provider -> the accounts this source may use with it
    providers: dict[str, list[Annotated[str, Field(min_length=1)]]]


class Registry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sources: dict[Annotated[str, Field(pattern=SOURCE_NAME_PATTERN)], ApiKeySource]


class Caller(BaseModel):
    """An authenticated source."""

    model_config = ConfigDict(frozen=True)

    name: str
    providers: dict[str, list[str]]

    def authorise(self, provider: str, account: str) -> None:
        accounts = self.providers.get(provider)
        if accounts is None:
            raise forbidden(f"This source may not use the provider {provider!r}.", "provider_not_allowed")
        if account not in accounts:
            raise forbidden(
                f"This source may not use the {provider} account {account!r}.", "account_not_allowed"
            )

    @property
    def allowed_providers(self) -> list[str]:
        return sorted(self.providers)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_registry(raw: dict[str, Any]) -> Registry:
    try:
        return Registry.model_validate(raw)
    except ValidationError:
        # The registry's content may hold secrets: name only where it is, never what is in it.
        raise RelayError(
            "The relay is not configured: the sources registry secret does not have the expected shape.",
            503,
            "not_configured",
            "Relay not configured",
            retry_after=RETRY_AFTER_MISCONFIGURED_SECONDS,
        ) from None


def presented_api_key(headers: Mapping[str, str]) -> str | None:
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise unauthenticated(
                "Use 'Authorization: Bearer <key>' or 'X-Api-Key: <key>'.", "malformed_credentials"
            )
        return value.strip()
    key = headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


def authenticate(registry: Registry, headers: Mapping[str, str]) -> Caller:
    """Find the source whose key matches; compare every stored hash in constant time."""
    key = presented_api_key(headers)
    if key is None:
        raise unauthenticated(
            "Send your API key in 'Authorization: Bearer <key>' or 'X-Api-Key'.", "missing_credentials"
        )
    if len(key) > MAX_API_KEY_LENGTH:
        raise unauthenticated("The API key is not valid.", "invalid_api_key")
    presented = hash_api_key(key)
    found: Caller | None = None
    for name, source in registry.sources.items():
        for stored in source.api_key_sha256:
            if hmac.compare_digest(presented, stored) and found is None:
                found = Caller(name=name, providers=source.providers)
    if found is None:
        raise unauthenticated("The API key is not valid.", "invalid_api_key")
    return found
