"""Provider registry: adding a provider is one adapter module and one line here."""

from __future__ import annotations

from relay.providers.acuity import Acuity
from relay.providers.base import Provider
from relay.providers.calcom import Calcom
from relay.providers.iclosed import IClosed
from relay.providers.novacal import NovaCal

PROVIDERS: dict[str, type[Provider]] = {
    adapter.name: adapter for adapter in (IClosed, NovaCal, Calcom, Acuity)
}
