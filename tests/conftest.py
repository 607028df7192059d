"""Shared fixtures: one local stack per test session (real DynamoDB Local, the Secrets Manager
emulator over HTTP, both sandbox providers, the API emulator), started and stopped here."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from local.stack import Stack, start_stack
from tests.helpers import TEST_PROVIDER_READ_TIMEOUT_SECONDS, Invoker, Sandbox


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    with start_stack(
        api_port=0, workers=4, extra_env={"PROVIDER_READ_TIMEOUT_SECONDS": TEST_PROVIDER_READ_TIMEOUT_SECONDS}
    ) as running:
        yield running


@pytest.fixture
def sandboxes(stack: Stack) -> dict[str, Sandbox]:
    """Both sandbox providers with an empty call log and no faults."""
    boxes = {name: Sandbox(sb.url, list(sb.bookings)) for name, sb in stack.sandboxes.items()}
    for box in boxes.values():
        box.reset()
    return boxes


@pytest.fixture(scope="session")
def relay_module(stack: Stack) -> Iterator[Any]:
    """The real handler module, imported in this process with the stack's environment."""
    patch = pytest.MonkeyPatch()
    for name, value in stack.env.items():
        patch.setenv(name, value)
    import app  # noqa: PLC0415 - the module reads its settings at import, so the environment comes first

    yield app
    patch.undo()


@pytest.fixture
def invoke(relay_module: Any) -> Invoker:
    return Invoker(relay_module)
