"""The HTTP door's first step at init, imported right after `relay.startup`: the caller registry,
which every request needs, is read on a thread of its own (`relay.dal.secrets.Prefetch`) while the
rest of init imports, so its round trip overlaps that work instead of adding to the first request.

Only where SECRETS_PREFIX is set (template.yaml and the local stack set it): the registry's name is
known here without the settings, which import pydantic, the larger part of what the read overlaps.
With SnapStart, `settle` runs before the snapshot, so no read is under way in it (relay/snapstart.py).
"""

from __future__ import annotations

import os

from relay.dal import clients
from relay.dal.secrets import Prefetch, sources_secret_name

_PREFIX = os.environ.get("SECRETS_PREFIX")
REGISTRY: Prefetch | None = (
    Prefetch(clients.secretsmanager(), sources_secret_name(_PREFIX)) if _PREFIX else None
)


def settle() -> None:
    """Wait for the registry read, if one was started (before a SnapStart snapshot)."""
    if REGISTRY is not None:
        REGISTRY.wait()
