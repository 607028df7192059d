"""One boto3 client per service per container, created on first use and reused.

Endpoints come from boto3's own settings (`AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_SECRETS_MANAGER`,
`AWS_ENDPOINT_URL_SQS`), so the local stack points the same code at DynamoDB Local and moto's server.

The session's model loader (`ServiceLoader`) is botocore's own, except that it does not list every
service botocore ships to check the name of one the relay uses: see its docstring.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.loaders import Loader

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient

# Fail fast: the whole request must fit inside API Gateway's 30 s, provider call included.
AWS_CONNECT_TIMEOUT_SECONDS = 1.0
AWS_READ_TIMEOUT_SECONDS = 3.0
AWS_MAX_ATTEMPTS = 2

_CONFIG = Config(
    connect_timeout=AWS_CONNECT_TIMEOUT_SECONDS,
    read_timeout=AWS_READ_TIMEOUT_SECONDS,
    retries={"mode": "standard", "total_max_attempts": AWS_MAX_ATTEMPTS},
    tcp_keepalive=True,
    # The requests are built by code, not from input, and the service validates them anyway:
    # client-side validation is CPU on every call (about 0.4 ms each here) for nothing.
    parameter_validation=False,
)


# The services the relay's clients speak to (the function's role allows no other).
RELAY_SERVICES = frozenset({"dynamodb", "secretsmanager", "sqs"})


class KnownServices(list[str]):
    """The relay's services that have a model of one type, answering `in` for any other name by
    botocore's full listing (`fallback`, made only when asked)."""

    def __init__(self, found: list[str], fallback: Any) -> None:
        super().__init__(found)
        self._fallback = fallback

    def __contains__(self, name: object) -> bool:
        return list.__contains__(self, name) or name in self._fallback()


class ServiceLoader(Loader):  # type: ignore[misc]  # botocore ships no type information
    """botocore's Loader, minus a scan of every service folder at each client's creation.

    Creating a client checks its name against `list_available_services(type)`, which lists the
    400-odd service folders botocore ships and each one's versions; the first two clients pay it for
    two model types, about 45 ms of a cold start measured on the artifacts (docs/performance.md).
    Here the list holds the relay's own services that have the model; a name outside it is looked
    up in botocore's full listing, so any other service still loads (or fails) exactly as before.
    """

    def list_available_services(self, type_name: str) -> list[str]:
        found = sorted(
            service
            for service in RELAY_SERVICES
            if any(self._has_model(Path(path) / service, type_name) for path in self.search_paths)
        )
        return KnownServices(found, lambda: super(ServiceLoader, self).list_available_services(type_name))

    def _has_model(self, service_dir: Path, type_name: str) -> bool:
        if not service_dir.is_dir():
            return False
        return any(self.file_loader.exists(str(version / type_name)) for version in service_dir.iterdir())


def _core_session() -> botocore.session.Session:
    core = botocore.session.get_session()
    default = core.get_component("data_loader")
    core.register_component(
        "data_loader",
        ServiceLoader(extra_search_paths=default.search_paths, include_default_search_paths=False),
    )
    return core


@cache
def _session() -> boto3.session.Session:
    return boto3.session.Session(botocore_session=_core_session())


def new_client(service: str, **options: Any) -> Any:
    """A client with the relay's timeouts and retries; `options` (endpoint, region) are for tests."""
    return _session().client(service, config=_CONFIG, **options)


@cache
def dynamodb() -> DynamoDBClient:
    client: DynamoDBClient = new_client("dynamodb")
    return client


@cache
def secretsmanager() -> SecretsManagerClient:
    client: SecretsManagerClient = new_client("secretsmanager")
    return client


@cache
def sqs() -> SQSClient:
    client: SQSClient = new_client("sqs")
    return client


def forget() -> None:
    """Drop the cached session and clients (after a SnapStart restore): the next call makes new ones."""
    for cached in (_session, dynamodb, secretsmanager, sqs):
        cached.cache_clear()
