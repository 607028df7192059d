"""Read-modify-write of the sources registry secret that cannot lose a concurrent change.

Each write is a compare-and-swap on Secrets Manager's version stages: the new value is stored as a
version labelled only `RELAYCTL_PENDING`, then `AWSCURRENT` is moved to it *from the version that
was read*; if another writer moved `AWSCURRENT` meanwhile, that move is refused and the change is
applied again on top of theirs. Every value is checked with the relay's own parser before it is
written, so a broken registry never reaches the relay.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from relay.callers.registry import Registry
from relayctl.aws import unavailable
from relayctl.errors import ToolError

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

PENDING_STAGE = "RELAYCTL_PENDING"
# template.yaml creates the registry as {"sources": {}, "placeholder": <random>}: not valid until set.
TEMPLATE_PLACEHOLDER = "placeholder"
# Concurrent writers are people and scripts: a handful of rounds is plenty.
MAX_WRITE_ROUNDS = 8


def read(client: SecretsManagerClient, name: str) -> tuple[dict[str, Any], str]:
    """The registry's current JSON and the version it came from."""
    try:
        secret = client.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")
    except (BotoCoreError, ClientError) as exc:
        raise unavailable(f"the sources registry secret {name!r}", exc) from None
    try:
        value = json.loads(secret["SecretString"])
    except (KeyError, ValueError):
        raise ToolError(f"the secret {name!r} is not JSON; fix it in the console first") from None
    if not isinstance(value, dict):
        raise ToolError(f"the secret {name!r} is not a JSON object")
    return value, secret["VersionId"]


def check(raw: dict[str, Any]) -> Registry:
    """The relay's own parser; its complaint names the place, never a value (values may be secrets)."""
    try:
        return Registry.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ToolError(f"refused: the registry would be invalid at {where}: {first['msg']}") from None


def update(
    client: SecretsManagerClient, name: str, change: Callable[[dict[str, Any]], dict[str, Any]]
) -> dict[str, Any]:
    """Apply `change` to the current registry and write it, retrying on a concurrent write."""
    for _ in range(MAX_WRITE_ROUNDS):
        current, version = read(client, name)
        new = change({k: v for k, v in copy.deepcopy(current).items() if k != TEMPLATE_PLACEHOLDER})
        check(new)
        token = str(uuid.uuid4())
        try:
            client.put_secret_value(
                SecretId=name,
                SecretString=json.dumps(new),
                ClientRequestToken=token,
                VersionStages=[PENDING_STAGE],
            )
            client.update_secret_version_stage(
                SecretId=name, VersionStage="AWSCURRENT", MoveToVersionId=token, RemoveFromVersionId=version
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {
                "InvalidParameterException",
                "InvalidRequestException",
            }:
                continue  # AWSCURRENT moved under us: another writer landed first; apply ours on top
            raise unavailable(f"writing {name!r}", exc) from None
        except BotoCoreError as exc:
            raise unavailable(f"writing {name!r}", exc) from None
        return new
    raise ToolError(f"the registry kept changing while writing; try again ({MAX_WRITE_ROUNDS} rounds)")
