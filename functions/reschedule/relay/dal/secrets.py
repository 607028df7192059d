"""JSON secrets from Secrets Manager, cached in the container (Powertools Parameters)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError, TransformParameterError
from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

from relay.errors import RelayError, not_configured, unavailable

RETRY_AFTER_UNAVAILABLE_SECONDS = 5
CURRENT_STAGE = "AWSCURRENT"


class SecretStore:
    def __init__(self, client: SecretsManagerClient, max_age_seconds: int) -> None:
        self._provider = SecretsProvider(boto3_client=client)
        self._max_age = max_age_seconds

    def get_json(self, name: str, *, force_fetch: bool = False) -> dict[str, Any]:
        try:
            # AWSCURRENT is the default; named because relayctl moves it with UpdateSecretVersionStage,
            # which moto's server (the local stack) reflects only for reads that name the stage.
            value = self._provider.get(
                name,
                max_age=self._max_age,
                transform="json",
                force_fetch=force_fetch,
                VersionStage=CURRENT_STAGE,
            )
        except TransformParameterError:
            raise _missing(name, "is not valid JSON") from None
        except (GetParameterError, BotoCoreError, ClientError) as exc:
            # Powertools wraps boto errors without `from`, so the boto error is the context.
            cause = exc.__context__ if isinstance(exc, GetParameterError) else exc
            if (
                isinstance(cause, ClientError)
                and cause.response["Error"]["Code"] == "ResourceNotFoundException"
            ):
                raise _missing(name, "does not exist") from None
            raise unavailable(
                "The secret store is unavailable; try again shortly.",
                "secrets_unavailable",
                RETRY_AFTER_UNAVAILABLE_SECONDS,
            ) from exc
        if not isinstance(value, dict):
            raise _missing(name, "is not a JSON object")
        return value


def _missing(name: str, why: str) -> RelayError:
    # The secret's name is configuration, not a secret: naming it tells the operator what to fix.
    return not_configured(f"secret {name!r} {why}.")
