"""Secrets Manager and SQS for the local stack and the tests: moto's server mode, reached over HTTP.

The relay talks to it with the same boto3 calls as in production; only the endpoint differs. One
moto server serves both services (each boto3 endpoint setting points at it).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3

from local.processes import DEFAULT_CACHE_DIR, DUMMY_CLIENT_SETTINGS, PROBE_CONFIG, LocalServer, launch


class SecretsEmulator(LocalServer):
    """A running moto server; pass ``.endpoint`` as boto3's ``endpoint_url``."""


def secretsmanager_client(endpoint: str) -> Any:
    """A boto3 Secrets Manager client for a local endpoint, with dummy credentials."""
    return boto3.client("secretsmanager", endpoint_url=endpoint, **DUMMY_CLIENT_SETTINGS)


def sqs_client(endpoint: str) -> Any:
    """A boto3 SQS client for the same moto server (it serves every moto service on one port)."""
    return boto3.client("sqs", endpoint_url=endpoint, **DUMMY_CLIENT_SETTINGS)


def _secrets_probe(endpoint: str) -> Callable[[], object]:
    client = boto3.client(
        "secretsmanager", endpoint_url=endpoint, config=PROBE_CONFIG, **DUMMY_CLIENT_SETTINGS
    )
    probe: Callable[[], object] = client.list_secrets
    return probe


def start_secrets_emulator(
    *, port: int = 0, host: str = "127.0.0.1", cache_dir: Path = DEFAULT_CACHE_DIR
) -> SecretsEmulator:
    """Start moto's server (all of moto's services; the relay uses Secrets Manager and SQS) on host:port."""
    return launch(
        SecretsEmulator,
        lambda chosen_port: [sys.executable, "-m", "moto.server", "-H", host, "-p", str(chosen_port)],
        port=port,
        host=host,
        log_dir=cache_dir / "logs",
        log_name="moto",
        probe=_secrets_probe,
        cwd=cache_dir,
    )


def put_secret_json(client: Any, name: str, value: dict[str, Any]) -> None:
    """Create the secret, or store a new current version if it exists. Safe to repeat."""
    secret_string = json.dumps(value)
    try:
        client.create_secret(Name=name, SecretString=secret_string)
    except client.exceptions.ResourceExistsException:
        client.put_secret_value(SecretId=name, SecretString=secret_string)
