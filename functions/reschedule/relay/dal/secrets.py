"""JSON secrets from Secrets Manager, cached in the container (Powertools Parameters).

`Prefetch` reads one secret on a thread of its own, so its round trip overlaps other work:

- the HTTP door starts one for the caller registry, which every request needs, as soon as the
  Secrets Manager client exists (relay/prefetch.py), so it overlaps the rest of init;
- the use case asks for a provider account's secret (`SecretStore.prefetch`) just before it takes
  the idempotency lock, so on a cold cache that read overlaps the lock's round trip.

The store answers the first read of a prefetched secret from it, waiting for it if it is still
under way, and puts it in the cache for the rest of its max age. A prefetch that failed is ignored:
that read goes to Secrets Manager as usual, so its error is the one a caller sees.
"""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError, TransformParameterError
from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

from relay.errors import RelayError, not_configured, unavailable

RETRY_AFTER_UNAVAILABLE_SECONDS = 5
CURRENT_STAGE = "AWSCURRENT"


def sources_secret_name(prefix: str) -> str:
    """The caller registry's secret under the deployment's SECRETS_PREFIX."""
    return f"{prefix}/sources"


class Prefetch:
    """One secret's JSON value, read on a daemon thread (started at once) through `client`."""

    def __init__(self, client: SecretsManagerClient, name: str) -> None:
        self.name = name
        self._client = client
        self._value: dict[str, Any] | None = None
        self._fetched_at = 0.0
        self._thread = threading.Thread(target=self._read, name=f"prefetch {name}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            answer = self._client.get_secret_value(SecretId=self.name, VersionStage=CURRENT_STAGE)
            value = json.loads(answer["SecretString"])
        except Exception:  # noqa: BLE001 - the first read fetches again and reports what went wrong
            return
        if isinstance(value, dict):
            self._value, self._fetched_at = value, time.monotonic()

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def wait(self) -> None:
        """Until the read is over (it is bounded by the client's timeouts and retries)."""
        self._thread.join()

    def take(self) -> tuple[dict[str, Any], float] | None:
        """(value, its age in seconds) once the read is over, waiting for it (never longer than a
        fetch would take); None if it failed."""
        self.wait()
        if self._value is None:
            return None
        return self._value, time.monotonic() - self._fetched_at


class SecretStore:
    def __init__(
        self, client: SecretsManagerClient, max_age_seconds: int, *, prefetched: Prefetch | None = None
    ) -> None:
        self._client = client
        self._provider = SecretsProvider(boto3_client=client)
        self._max_age = max_age_seconds
        self._prefetched: dict[str, Prefetch] = {} if prefetched is None else {prefetched.name: prefetched}

    def _cache_key(self, name: str) -> Any:
        # The key as Powertools builds it for get(name, transform="json"), the read below.
        return self._provider._build_cache_key(name=name, transform="json")

    def prefetch(self, name: str) -> None:
        """Start reading `name` on its own thread, unless the cache or a read under way has it."""
        if name not in self._prefetched and not self._provider.has_not_expired_in_cache(
            self._cache_key(name)
        ):
            self._prefetched[name] = Prefetch(self._client, name)

    def _take_prefetched(self, name: str, force_fetch: bool) -> dict[str, Any] | None:
        """The prefetched value of `name` on its first read, put in the cache for the rest of its max age."""
        prefetched = self._prefetched.pop(name, None)  # once: later reads go through the cache
        taken = None if prefetched is None or force_fetch else prefetched.take()
        if taken is None:
            return None
        value, age = taken
        if age >= self._max_age:
            return None
        self._provider.add_to_cache(key=self._cache_key(name), value=value, max_age=int(self._max_age - age))
        return value

    def get_json(self, name: str, *, force_fetch: bool = False) -> dict[str, Any]:
        prefetched = self._take_prefetched(name, force_fetch)
        if prefetched is not None:
            return prefetched
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
