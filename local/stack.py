"""The embedded local stack: DynamoDB Local, the Secrets Manager emulator, both sandbox providers,
and the API emulator in front of the real handler. Used by `make run` and by the tests.

    python -m local.stack            # foreground, Ctrl-C stops everything (PORT overrides 3000)
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import boto3

from local.dynamodb_local import DynamoDBLocal, start_dynamodb_local
from local.emulator import ApiEmulator, start_emulator
from local.sandbox import PROVIDERS, SandboxProvider, start_sandbox
from local.secrets_emulator import SecretsEmulator, start_secrets_emulator
from local.seed import DEMO_SOURCES, PROVIDER_TOKENS, SECRETS_PREFIX, seed_secrets
from local.tables import create_tables
from local.template import REPO_ROOT, TEMPLATE_PATH

CACHE_DIR = REPO_ROOT / ".local"
# Where `make run` keeps its DynamoDB data and writes stack.json (tests point it elsewhere).
STATE_DIR = Path(os.environ.get("LOCAL_STATE_DIR", CACHE_DIR))
CODE_DIR = REPO_ROOT / "functions" / "reschedule"
DEFAULT_API_PORT = 3000
REGION = "us-east-1"
TABLE_NAMES = {"IdempotencyTable": "relay-idempotency", "ReschedulesTable": "relay-reschedules"}
# Dummy credentials: DynamoDB Local and moto accept anything; real AWS is never reached.
AWS_ENV = {
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "sandbox",
    "AWS_SECRET_ACCESS_KEY": "sandbox",
}


@dataclass
class Stack:
    dynamodb: DynamoDBLocal
    secrets: SecretsEmulator
    sandboxes: dict[str, SandboxProvider]
    env: dict[str, str]
    api: ApiEmulator | None = None
    _stopped: bool = field(default=False, repr=False)

    def client(self, service: str) -> Any:
        endpoint = self.dynamodb.endpoint if service == "dynamodb" else self.secrets.endpoint
        return boto3.client(
            service,
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="sandbox",
            aws_secret_access_key="sandbox",
        )

    def describe(self) -> dict[str, Any]:
        """What `.local/stack.json` holds: everything a caller needs to try the relay."""
        return {
            "api_url": self.api.url if self.api else None,
            "sources": {
                s.name: {"kind": "api_key", "api_key": s.api_key, "providers": sorted(s.providers)}
                for s in DEMO_SOURCES
            },
            "providers": {
                name: {"url": sb.url, "bookings": list(sb.bookings)} for name, sb in self.sandboxes.items()
            },
            "dynamodb_endpoint": self.dynamodb.endpoint,
            "secrets_endpoint": self.secrets.endpoint,
            "tables": dict(TABLE_NAMES),
        }

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        for stopper in (
            ([self.api.stop] if self.api else [])
            + [sb.stop for sb in self.sandboxes.values()]
            + [self.secrets.stop, self.dynamodb.stop]
        ):
            with contextlib.suppress(Exception):
                stopper()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def relay_environment(
    dynamodb: DynamoDBLocal, secrets: SecretsEmulator, sandboxes: dict[str, SandboxProvider]
) -> dict[str, str]:
    """The handler's environment: the names template.yaml sets, with local values."""
    return AWS_ENV | {
        "POWERTOOLS_SERVICE_NAME": "reschedule-relay",
        "POWERTOOLS_METRICS_NAMESPACE": "RescheduleRelay",
        "POWERTOOLS_LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"),
        "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon locally
        "IDEMPOTENCY_TABLE_NAME": TABLE_NAMES["IdempotencyTable"],
        "RESCHEDULES_TABLE_NAME": TABLE_NAMES["ReschedulesTable"],
        "SECRETS_PREFIX": SECRETS_PREFIX,
        "ICLOSED_BASE_URL": sandboxes["iclosed"].url,
        "NOVACAL_BASE_URL": sandboxes["novacal"].url,
        "DEFAULT_DURATION_MINUTES": "30",
        "RECORD_RETENTION_DAYS": "90",
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb.endpoint,
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": secrets.endpoint,
    }


def start_stack(
    *,
    persist: bool = False,
    api_port: int | None = 0,
    workers: int = 4,
    extra_env: dict[str, str] | None = None,
    api_timeout_s: float | None = None,
) -> Stack:
    """Start every component; `api_port=None` starts no API emulator (in-process tests)."""
    started: list[Any] = []
    try:
        dynamodb = start_dynamodb_local(db_path=STATE_DIR / "dynamodb-data" if persist else None)
        started.append(dynamodb)
        secrets = start_secrets_emulator()
        started.append(secrets)
        sandboxes = {}
        for name in PROVIDERS:
            sandboxes[name] = start_sandbox(name, token=PROVIDER_TOKENS[name])
            started.append(sandboxes[name])
        env = relay_environment(dynamodb, secrets, sandboxes) | (extra_env or {})
        stack = Stack(dynamodb, secrets, sandboxes, env)
        create_tables(stack.client("dynamodb"), TABLE_NAMES)
        seed_secrets(stack.client("secretsmanager"))
        if api_port is not None:
            stack.api = start_emulator(
                handler="app:lambda_handler",
                code_dir=CODE_DIR,
                template=TEMPLATE_PATH,
                port=api_port,
                workers=workers,
                env=stack.env,
                timeout_s=api_timeout_s,
            )
        return stack
    except BaseException:
        for component in reversed(started):
            with contextlib.suppress(Exception):
                component.stop()
        raise


def curl_examples(info: dict[str, Any]) -> str:
    api = info["api_url"]
    source = next(iter(info["sources"].values()))
    key = source["api_key"]
    iclosed = info["providers"]["iclosed"]["bookings"][0]
    novacal = info["providers"]["novacal"]["bookings"][0]
    day = (date.today() + timedelta(days=30)).isoformat()
    return f"""
Reschedule an iClosed booking (JSON, as Zapier sends it):
  curl -s -X POST {api}/v1/reschedules -H 'Authorization: Bearer {key}' \\
    -H 'Content-Type: application/json' -H 'Idempotency-Key: demo-1' \\
    -d '{{"provider": "iclosed", "booking_id": {iclosed}, "start": "{day}T10:00:00",
         "timezone": "America/New_York"}}'

Reschedule a NovaCal booking (a website form):
  curl -s -X POST {api}/v1/reschedules -H 'X-Api-Key: {key}' \\
    --data-urlencode provider=novacal --data-urlencode booking_id={novacal} \\
    --data-urlencode date={day} --data-urlencode time=15:30 \\
    --data-urlencode timezone=Europe/Berlin --data-urlencode duration_minutes=45

Read a stored outcome:
  curl -s {api}/v1/reschedules/<reschedule_id> -H 'Authorization: Bearer {key}'
"""


def main() -> int:
    port = int(os.environ.get("PORT", DEFAULT_API_PORT))
    print(
        "starting the local stack (DynamoDB Local, Secrets Manager emulator, sandbox providers, API)...",
        flush=True,
    )
    stack = start_stack(persist=True, api_port=port)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        info = stack.describe()
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        (STATE_DIR / "stack.json").write_text(json.dumps(info, indent=2) + "\n")
        print(f"ready: API on {info['api_url']} (details in .local/stack.json)")
        print(curl_examples(info), flush=True)
        print("Ctrl-C stops everything.", flush=True)
        stop.wait()
    finally:
        print("stopping...", flush=True)
        stack.stop()
        with contextlib.suppress(FileNotFoundError):
            (STATE_DIR / "stack.json").unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
