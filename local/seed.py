"""Demo data for the local stack: sandbox provider tokens and a demo source in Secrets Manager.

All values are obviously fake (`sandbox-...`); nothing here is used outside the local stack and tests.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from local.secrets_emulator import put_secret_json

SECRETS_PREFIX = "reschedule-relay"
PROVIDER_TOKENS = {
    # iClosed keys carry an 'iclosed' prefix (contracts/iclosed.md); the relay sends them as stored.
    "iclosed": "iclosed-sandbox-token-0001",
    "novacal": "sandbox-novacal-token-0001",
}


@dataclass(frozen=True)
class DemoSource:
    name: str
    api_key: str
    providers: dict[str, list[str]] = field(default_factory=dict)

    def registry_entry(self) -> dict[str, Any]:
        return {
            "kind": "api_key",
            "api_key_sha256": [hashlib.sha256(self.api_key.encode()).hexdigest()],
            "providers": self.providers,
        }


DEMO_SOURCES = (
    DemoSource(
        "zapier-demo", "sandbox-key-zapier-demo-0001", {"iclosed": ["default"], "novacal": ["default"]}
    ),
    # A second caller limited to one provider: shows the allow-list, and keeps sources' records apart.
    DemoSource("website-demo", "sandbox-key-website-demo-0001", {"novacal": ["default"]}),
)


def seed_secrets(
    client: Any, sources: tuple[DemoSource, ...] = DEMO_SOURCES, prefix: str = SECRETS_PREFIX
) -> None:
    for provider, token in PROVIDER_TOKENS.items():
        put_secret_json(client, f"{prefix}/providers/{provider}/default", {"api_key": token})
    put_secret_json(client, f"{prefix}/sources", {"sources": {s.name: s.registry_entry() for s in sources}})
