"""Counting remote calls: HTTP sends of a boto3 client, and TCP connections a sandbox provider saw.

Shared by the benchmark and the budget tests (tests/integration/test_budgets.py), so both count the
same way. Counts are deterministic, unlike timings, which is why they can be asserted in tests.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

# Control calls to a sandbox are local and quick; a stuck one must not hang the bench or a test.
CONTROL_TIMEOUT_SECONDS = 5.0
_ids = itertools.count()


@dataclass
class Sends:
    """The HTTP requests one client sent while counting (retries included), by operation name."""

    operations: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.operations)


@contextlib.contextmanager
def count_sends(client: Any) -> Iterator[Sends]:
    """Count every HTTP request `client` (a boto3 client) sends inside the block.

    botocore emits `before-send.<service>.<Operation>` on the client's own event emitter just
    before each attempt goes on the wire, so this counts round trips, retries included, and only
    this client's (clients do not share emitters). The handler returns None, so the request is sent.
    """
    sends = Sends()
    event = f"before-send.{client.meta.service_model.service_id.hyphenize()}"
    unique_id = f"bench-count-sends-{next(_ids)}"

    def on_send(event_name: str, **_kwargs: Any) -> None:
        sends.operations.append(event_name.rsplit(".", 1)[-1])

    client.meta.events.register(event, on_send, unique_id=unique_id)
    try:
        yield sends
    finally:
        client.meta.events.unregister(event, on_send, unique_id=unique_id)


class SandboxControl:
    """A sandbox provider's control surface (`/_sandbox/...`), on a connection of its own.

    Control requests are not provider-API requests, so they never count as the relay's connections.
    """

    def __init__(self, url: str) -> None:
        self._client = httpx.Client(base_url=url, timeout=CONTROL_TIMEOUT_SECONDS)

    def reset_stats(self) -> None:
        self._client.delete("/_sandbox/stats").raise_for_status()

    def stats(self) -> dict[str, int]:
        """`connections`: TCP connections that carried provider-API requests since the reset."""
        response = self._client.get("/_sandbox/stats")
        response.raise_for_status()
        counted: dict[str, int] = response.json()
        return counted

    def delay(self, delay_ms: int, times: int) -> None:
        """Delay each of the next `times` provider-API calls by `delay_ms` (and nothing else)."""
        self._client.post("/_sandbox/faults", json={"delay_ms": delay_ms, "times": times}).raise_for_status()

    def pending_faults(self) -> int:
        response = self._client.get("/_sandbox/faults")
        response.raise_for_status()
        remaining: int = response.json()["remaining"]
        return remaining

    def clear_faults(self) -> None:
        self._client.delete("/_sandbox/faults").raise_for_status()

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> SandboxControl:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
