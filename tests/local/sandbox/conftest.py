"""Sandbox fixtures: one server per provider per test module, reset before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.sandbox import PROVIDERS, SandboxProvider, start_sandbox
from tests.local.sandbox.helpers import HTTP, TOKENS, reset


def _serve(name: str) -> Iterator[SandboxProvider]:
    sandbox = start_sandbox(name, token=TOKENS[name], host="127.0.0.1", port=0)
    yield sandbox
    sandbox.stop()


@pytest.fixture(scope="module")
def iclosed_server() -> Iterator[SandboxProvider]:
    yield from _serve("iclosed")


@pytest.fixture(scope="module")
def novacal_server() -> Iterator[SandboxProvider]:
    yield from _serve("novacal")


@pytest.fixture(scope="module")
def calcom_server() -> Iterator[SandboxProvider]:
    yield from _serve("calcom")


@pytest.fixture(scope="module")
def acuity_server() -> Iterator[SandboxProvider]:
    yield from _serve("acuity")


@pytest.fixture
def iclosed(iclosed_server: SandboxProvider) -> SandboxProvider:
    reset(iclosed_server)
    return iclosed_server


@pytest.fixture
def novacal(novacal_server: SandboxProvider) -> SandboxProvider:
    reset(novacal_server)
    return novacal_server


@pytest.fixture
def calcom(calcom_server: SandboxProvider) -> SandboxProvider:
    reset(calcom_server)
    return calcom_server


@pytest.fixture
def acuity(acuity_server: SandboxProvider) -> SandboxProvider:
    reset(acuity_server)
    return acuity_server


@pytest.fixture(params=PROVIDERS)
def sandbox(request: pytest.FixtureRequest) -> SandboxProvider:
    """Each provider in turn, reset, for behaviour every sandbox shares."""
    provider: SandboxProvider = request.getfixturevalue(request.param)
    return provider


@pytest.fixture(scope="session", autouse=True)
def _close_http_client() -> Iterator[None]:
    yield
    HTTP.close()
