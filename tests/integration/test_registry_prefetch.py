"""The caller registry read at init (relay/prefetch.py, relay/dal/secrets.py `Prefetch`): its first
read makes no call of its own, later reads come from the cache, and a prefetch that failed changes
nothing about the first read's answer. Against the session stack's Secrets Manager emulator."""

from __future__ import annotations

from typing import Any

import pytest

from bench.counting import count_sends
from local.seed import SECRETS_PREFIX
from local.stack import Stack
from relay.dal.clients import new_client
from relay.dal.secrets import Prefetch, SecretStore, sources_secret_name
from relay.errors import RelayError

MAX_AGE_SECONDS = 300
REGISTRY = sources_secret_name(SECRETS_PREFIX)


@pytest.fixture
def secretsmanager(stack: Stack) -> Any:
    return new_client(
        "secretsmanager",
        endpoint_url=stack.secrets.endpoint,
        region_name="us-east-1",
        aws_access_key_id="sandbox",
        aws_secret_access_key="sandbox",
    )


def test_the_first_read_uses_the_prefetch_and_later_reads_the_cache(secretsmanager: Any) -> None:
    expected = SecretStore(secretsmanager, MAX_AGE_SECONDS).get_json(REGISTRY)
    prefetch = Prefetch(secretsmanager, REGISTRY)
    store = SecretStore(secretsmanager, MAX_AGE_SECONDS, prefetched=prefetch)
    assert prefetch.take() is not None  # the prefetch's own call is over before counting starts

    with count_sends(secretsmanager) as sends:
        first = store.get_json(REGISTRY)
        second = store.get_json(REGISTRY)

    assert sends.operations == []
    assert first == expected
    assert second is first


def test_a_prefetch_of_another_secret_is_not_used(secretsmanager: Any) -> None:
    other = Prefetch(secretsmanager, f"{SECRETS_PREFIX}/other")
    other.wait()  # its own call is over before counting starts
    store = SecretStore(secretsmanager, MAX_AGE_SECONDS, prefetched=other)

    with count_sends(secretsmanager) as sends:
        store.get_json(REGISTRY)

    assert sends.operations == ["GetSecretValue"]


def test_a_failed_prefetch_leaves_the_first_read_its_own_answer(secretsmanager: Any) -> None:
    missing = f"{SECRETS_PREFIX}/no-such-secret"
    prefetch = Prefetch(secretsmanager, missing)
    assert prefetch.take() is None
    store = SecretStore(secretsmanager, MAX_AGE_SECONDS, prefetched=prefetch)

    with count_sends(secretsmanager) as sends, pytest.raises(RelayError) as refused:
        store.get_json(missing)

    assert sends.operations == ["GetSecretValue"]  # read again, so the answer is the real one
    assert (refused.value.status, refused.value.code) == (503, "not_configured")
    assert "does not exist" in str(
        refused.value.log_detail
    )  # the operator's cause; the answer names no secret


def test_a_forced_read_skips_the_prefetch(secretsmanager: Any) -> None:
    prefetch = Prefetch(secretsmanager, REGISTRY)
    store = SecretStore(secretsmanager, MAX_AGE_SECONDS, prefetched=prefetch)
    assert prefetch.take() is not None

    with count_sends(secretsmanager) as sends:
        store.get_json(REGISTRY, force_fetch=True)
        store.get_json(REGISTRY)

    assert sends.operations == ["GetSecretValue"]  # forced, then cached


def test_the_http_door_starts_the_registry_read_at_init(relay_module: Any) -> None:
    import relay.prefetch  # noqa: PLC0415 - imported by the handler module, with the stack's environment

    assert relay.prefetch.REGISTRY is not None
    assert relay.prefetch.REGISTRY.name == REGISTRY


def test_an_account_secret_asked_for_early_is_read_once(secretsmanager: Any) -> None:
    # The use case asks before its lock; the read it then makes takes that value.
    account = f"{SECRETS_PREFIX}/providers/iclosed/default"
    store = SecretStore(secretsmanager, MAX_AGE_SECONDS)

    with count_sends(secretsmanager) as sends:
        store.prefetch(account)
        value = store.get_json(account)
        store.prefetch(account)  # cached now: nothing more is read
        again = store.get_json(account)

    assert sends.operations == ["GetSecretValue"]
    assert again is value
    assert "api_key" in value
