"""Provider registry: adding a provider is one adapter module and one line here."""

from __future__ import annotations

from relay.providers import iclosed, novacal
from relay.providers.base import Provider

PROVIDERS: dict[str, Provider] = {
    iclosed.ADAPTER.name: iclosed.ADAPTER,
    novacal.ADAPTER.name: novacal.ADAPTER,
}
