"""One boto3 client per service per container, created on first use and reused.

Endpoints come from boto3's own settings (`AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_SECRETS_MANAGER`,
`AWS_ENDPOINT_URL_SQS`), so the local stack points the same code at DynamoDB Local and moto's server.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

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


@cache
def _session() -> boto3.session.Session:
    return boto3.session.Session()


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
