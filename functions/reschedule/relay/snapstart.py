"""Lambda SnapStart: after a restore, nothing that must be unique is shared with the snapshot.

Every environment restored from one snapshot starts from the memory init left: the same boto3 and
httpx clients (their pooled sockets were opened before the snapshot), the same `random` state, the
same cached secrets. The runtime calls the hook registered here after each restore, before the
first request: it reseeds `random` from the OS, drops the cached boto3 session and clients, and has
the door build its relay again (a new provider HTTP client, new AWS clients, empty secret caches,
so secrets are read again). Without SnapStart the hook never runs.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from relay.dal import clients


def after_restore(rebuild: Callable[[], None]) -> None:
    random.seed()  # from os.urandom: retry jitter must not repeat across restored environments
    clients.forget()
    rebuild()


def register(rebuild: Callable[[], None], *, before_snapshot: Callable[[], None] | None = None) -> bool:
    """Register `after_restore(rebuild)` (and `before_snapshot`, run when init is over and the
    snapshot is about to be taken) with the runtime; False where nothing offers the hooks."""
    try:
        # The Lambda Python runtime ships this module; locally it is the dev dependency.
        from snapshot_restore_py import register_after_restore, register_before_snapshot  # noqa: PLC0415
    except ModuleNotFoundError:  # no runtime hooks here, so no restore will ever happen either
        return False
    if before_snapshot is not None:
        register_before_snapshot(before_snapshot)
    register_after_restore(after_restore, rebuild)
    return True
