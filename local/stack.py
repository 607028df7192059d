"""The embedded local stack: DynamoDB Local, moto's server (Secrets Manager and SQS), both sandbox
providers, the API emulator in front of the real handler, and the SQS event source poller in front
of the worker handler. Used by `make run` and by the tests.

    python -m local.stack            # foreground, Ctrl-C stops everything (PORT overrides 3000)
    python -m local.stack --reset    # `make reset`: delete the local state (DynamoDB data, stack.json)

`make run` keeps the attempt history and the sandboxes' bookings between runs (both under .local/),
so the relay's history and the providers agree after a restart: a Cal.com uid the history follows is
still known to its sandbox. It starts with no idempotency records: the delivery queue (moto) is not
kept, so a record of a queued request from the previous run would wait for a message that is gone.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3

from local.callback_sink import CallbackSink, start_callback_sink
from local.dynamodb_local import DynamoDBLocal, start_dynamodb_local
from local.emulator import ApiEmulator, start_emulator
from local.event_source import EventSourcePoller, event_source_config, start_event_source
from local.form_page import FormPage, start_form_page
from local.queues import LocalQueue, create_queues
from local.sandbox import PROVIDERS, SandboxProvider, start_sandbox
from local.secrets_emulator import SecretsEmulator, sqs_client, start_secrets_emulator
from local.seed import (
    FORM_DEMO,
    PROVIDER_TOKENS,
    SECRETS_PREFIX,
    AnyDemoSource,
    demo_sources,
    pace_sandboxes,
    registry,
    seed_secrets,
)
from local.sign_link import mint_link
from local.tables import clear_table, create_tables
from local.template import REPO_ROOT, TEMPLATE_PATH, load_template

CACHE_DIR = REPO_ROOT / ".local"
# Where `make run` keeps its DynamoDB data and writes stack.json (tests point it elsewhere).
STATE_DIR = Path(os.environ.get("LOCAL_STATE_DIR", CACHE_DIR))
CODE_DIR = REPO_ROOT / "functions" / "reschedule"
DEFAULT_API_PORT = 3000
REGION = "us-east-1"
TABLE_NAMES = {"IdempotencyTable": "relay-idempotency", "ReschedulesTable": "relay-reschedules"}
# ---- durable delivery (queues and the worker's event source) ----
QUEUE_NAMES = {
    "DeliveryQueue": "relay-deliveries",
    "DeliveryDeadLetterQueue": "relay-deliveries-dead-letter",
    "CallbackQueue": "relay-callbacks",
    "CallbackDeadLetterQueue": "relay-callbacks-dead-letter",
}
WORKER_FUNCTION = "WorkerFunction"
# Outcome callbacks: their own queue, polled for their own function (template.yaml).
CALLBACK_FUNCTION = "CallbackFunction"
# ---- end durable delivery ----
# Dummy credentials: DynamoDB Local and moto accept anything; real AWS is never reached.
AWS_ENV = {
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "sandbox",
    "AWS_SECRET_ACCESS_KEY": "sandbox",
}
# What `make reset` deletes under the state directory (downloads and tool installs stay).
STATE_ENTRIES = ("dynamodb-data", "sandboxes", "stack.json", "logs")
# Under the state dir: one JSON file of bookings per sandbox provider (`make run` only).
SANDBOX_STATE_DIR = "sandboxes"
# How long `make reset` waits to see whether a stack described by stack.json still answers.
RUNNING_PROBE_TIMEOUT_SECONDS = 1.0


class StackRunning(RuntimeError):
    """`make reset` refuses to delete the data of a stack that is still running."""


# The environment variables that point boto3 (and so relayctl) at the local stack's resources.
TOOL_ENV_NAMES = (
    # relayctl refuses callback URLs on loopback unless the stack's own setting allows them.
    "CALLBACK_ALLOW_HTTP_LOOPBACK",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "AWS_ENDPOINT_URL_SQS",
    "SECRETS_PREFIX",
    "RESCHEDULES_TABLE_NAME",
    "IDEMPOTENCY_TABLE_NAME",
    "DELIVERY_QUEUE_URL",
    "DEAD_LETTER_QUEUE_URL",
    "CALLBACK_QUEUE_URL",
    "CALLBACK_DEAD_LETTER_QUEUE_URL",
)


@dataclass
class Stack:
    dynamodb: DynamoDBLocal
    secrets: SecretsEmulator
    sandboxes: dict[str, SandboxProvider]
    env: dict[str, str]
    api: ApiEmulator | None = None
    # The demo form source's pages (its origin is the one the registry allows).
    form_page: FormPage | None = None
    sources: tuple[AnyDemoSource, ...] = ()
    # Idempotency records of a previous run deleted at start (`forget_idempotency`).
    forgotten_idempotency_records: int = 0
    # The template's queues by logical id, and the poller that feeds the worker handler (if any).
    queues: dict[str, LocalQueue] = field(default_factory=dict)
    event_source: EventSourcePoller | None = None
    # The poller that feeds the callback function's handler (its own queue).
    callback_event_source: EventSourcePoller | None = None
    # Records the outcome callbacks the relay POSTs for the demo sources that have one.
    callback_sink: CallbackSink | None = None
    _stopped: bool = field(default=False, repr=False)

    def client(self, service: str) -> Any:
        # moto's one server serves Secrets Manager and SQS alike.
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
            "sources": {s.name: s.caller_info() for s in self.sources},
            "providers": {
                name: {"url": sb.url, "bookings": list(sb.bookings)} for name, sb in self.sandboxes.items()
            },
            "dynamodb_endpoint": self.dynamodb.endpoint,
            "secrets_endpoint": self.secrets.endpoint,
            "secrets_prefix": SECRETS_PREFIX,
            "tables": dict(TABLE_NAMES),
            "queue": {
                "url": self.queues["DeliveryQueue"].url if self.queues else None,
                "dlq_url": self.queues["DeliveryDeadLetterQueue"].url if self.queues else None,
            },
            "callback_queue": {
                "url": self.queues["CallbackQueue"].url if self.queues else None,
                "dlq_url": self.queues["CallbackDeadLetterQueue"].url if self.queues else None,
            },
            "callback_sink": {
                "url": self.callback_sink.url if self.callback_sink else None,
                "deliveries_url": self.callback_sink.deliveries_url if self.callback_sink else None,
            },
            # What points boto3 and relayctl at this stack (`export` them, then run relayctl).
            "aws": {"region": REGION, "env": {k: v for k, v in self.env.items() if k in TOOL_ENV_NAMES}},
        }

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        for stopper in (
            ([self.event_source.stop] if self.event_source else [])
            + ([self.callback_event_source.stop] if self.callback_event_source else [])
            + ([self.api.stop] if self.api else [])
            + ([self.form_page.stop] if self.form_page else [])
            + ([self.callback_sink.stop] if self.callback_sink else [])
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
        "CALCOM_BASE_URL": sandboxes["calcom"].url,
        "ACUITY_BASE_URL": sandboxes["acuity"].url,
        "DEFAULT_DURATION_MINUTES": "30",
        "RECORD_RETENTION_DAYS": "90",
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb.endpoint,
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": secrets.endpoint,
        "AWS_ENDPOINT_URL_SQS": secrets.endpoint,
        # The callback sink is plain http on loopback; deployed callbacks are https only.
        "CALLBACK_ALLOW_HTTP_LOOPBACK": "true",
    }


# ---- durable delivery (queues and the worker's event source) ----
def queue_environment(queues: dict[str, LocalQueue], template: dict[str, Any]) -> dict[str, str]:
    """The queue settings template.yaml gives both functions, with the local queues' URLs."""
    max_age = template["Parameters"]["DeliveryMaxAgeSeconds"]["Default"]
    return {
        "DELIVERY_QUEUE_URL": queues["DeliveryQueue"].url,
        "DEAD_LETTER_QUEUE_URL": queues["DeliveryDeadLetterQueue"].url,
        "DELIVERY_MAX_AGE_SECONDS": str(max_age),
        "CALLBACK_QUEUE_URL": queues["CallbackQueue"].url,
        "CALLBACK_DEAD_LETTER_QUEUE_URL": queues["CallbackDeadLetterQueue"].url,
    }


def start_worker_event_source(
    stack: Stack, *, code_dir: Path, handler: str | None, template: dict[str, Any], prestart: int = 1
) -> EventSourcePoller | None:
    """The poller in front of the worker handler, as the template maps it; None while there is none.

    It starts when the relay is given a queue (``DELIVERY_QUEUE_URL``) and the handler's module
    exists in ``code_dir`` (``handler`` overrides the template's, e.g. a test fixture's);
    ``prestart`` containers are started before it polls.
    """
    config = event_source_config(template, function=WORKER_FUNCTION)
    handler = handler or config.handler
    module = handler.replace(":", ".").rpartition(".")[0]
    queue_url = stack.env.get("DELIVERY_QUEUE_URL")
    if not queue_url or not (code_dir / f"{module.replace('.', '/')}.py").is_file():
        return None
    queue = next((q for q in stack.queues.values() if q.url == queue_url), None)
    return start_event_source(
        queue_url=queue_url,
        queue_arn=queue.arn if queue else stack.queues[config.queue_logical_id].arn,
        endpoint=stack.env.get("AWS_ENDPOINT_URL_SQS", stack.secrets.endpoint),
        handler=handler,
        code_dir=code_dir,
        env=stack.env,
        batch_size=config.batch_size,
        maximum_concurrency=config.maximum_concurrency,
        batching_window_s=config.batching_window_s,
        report_batch_item_failures=config.report_batch_item_failures,
        function_timeout_s=config.timeout_s,
        function_name=config.function_name,
        memory_mb=config.memory_mb,
        region=REGION,
        prestart=prestart,
    )


def start_callback_event_source(
    stack: Stack, *, code_dir: Path = CODE_DIR, template: dict[str, Any], prestart: int = 1
) -> EventSourcePoller | None:
    """The poller in front of the callback function's handler, as the template maps it; None without a
    callback queue (``CALLBACK_QUEUE_URL``)."""
    config = event_source_config(template, function=CALLBACK_FUNCTION)
    queue_url = stack.env.get("CALLBACK_QUEUE_URL")
    if not queue_url:
        return None
    return start_event_source(
        queue_url=queue_url,
        queue_arn=stack.queues[config.queue_logical_id].arn,
        endpoint=stack.env.get("AWS_ENDPOINT_URL_SQS", stack.secrets.endpoint),
        handler=config.handler,
        code_dir=code_dir,
        env=stack.env,
        batch_size=config.batch_size,
        maximum_concurrency=config.maximum_concurrency,
        batching_window_s=config.batching_window_s,
        report_batch_item_failures=config.report_batch_item_failures,
        function_timeout_s=config.timeout_s,
        function_name=config.function_name,
        memory_mb=config.memory_mb,
        region=REGION,
        prestart=prestart,
    )


# ---- end durable delivery ----


def start_stack(
    *,
    persist: bool = False,
    api_port: int | None = 0,
    workers: int = 4,
    extra_env: dict[str, str] | None = None,
    api_timeout_s: float | None = None,
    form_port: int = 0,
    state_dir: Path | None = None,
    forget_idempotency: bool = False,
    worker_code_dir: Path = CODE_DIR,
    worker_handler: str | None = None,
    queue_overrides: dict[str, dict[str, str]] | None = None,
) -> Stack:
    """Start every component; `api_port=None` starts no API emulator (in-process tests).

    `persist` keeps DynamoDB's data and the sandboxes' bookings under `state_dir` (default
    STATE_DIR), so a restart finds both as they were; `forget_idempotency`
    deletes the idempotency records found there before the API starts, keeping the attempts.
    The demo form page starts first: the form source's allowed origin is its address. The worker's
    event source starts when its handler exists (`worker_code_dir`, `worker_handler`: tests' own);
    `queue_overrides` replaces queue attributes by logical id (tests: short visibility timeouts).
    """
    state_dir = STATE_DIR if state_dir is None else state_dir
    started: list[Any] = []
    try:
        dynamodb = start_dynamodb_local(db_path=state_dir / "dynamodb-data" if persist else None)
        started.append(dynamodb)
        secrets = start_secrets_emulator()
        started.append(secrets)
        sandboxes = {}
        for name in PROVIDERS:
            state_file = state_dir / SANDBOX_STATE_DIR / f"{name}.json" if persist else None
            sandboxes[name] = start_sandbox(name, token=PROVIDER_TOKENS[name], state_file=state_file)
            started.append(sandboxes[name])
        pace_sandboxes(sandboxes)  # pacing: the paced accounts' keys, limited at their rates
        form_page = start_form_page(honeypot=FORM_DEMO.honeypot, port=form_port)
        started.append(form_page)
        callback_sink = start_callback_sink()
        started.append(callback_sink)
        template = load_template(TEMPLATE_PATH)
        queues = create_queues(sqs_client(secrets.endpoint), QUEUE_NAMES, template, queue_overrides)
        env = (
            relay_environment(dynamodb, secrets, sandboxes)
            | queue_environment(queues, template)
            | (extra_env or {})
        )
        sources = demo_sources(form_page.url, callback_sink.hook_url)
        stack = Stack(
            dynamodb,
            secrets,
            sandboxes,
            env,
            form_page=form_page,
            sources=sources,
            queues=queues,
            callback_sink=callback_sink,
        )
        create_tables(stack.client("dynamodb"), TABLE_NAMES)
        if forget_idempotency:
            stack.forgotten_idempotency_records = clear_table(
                stack.client("dynamodb"), TABLE_NAMES["IdempotencyTable"]
            )
        seed_secrets(stack.client("secretsmanager"), sources)
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
            form_page.api_url = stack.api.url
            started.append(stack.api)
        stack.event_source = start_worker_event_source(
            stack, code_dir=worker_code_dir, handler=worker_handler, template=template
        )
        if stack.event_source is not None:
            started.append(stack.event_source)
        stack.callback_event_source = start_callback_event_source(stack, template=template)
        return stack
    except BaseException:
        for component in reversed(started):
            with contextlib.suppress(Exception):
                component.stop()
        raise


def _first(info: dict[str, Any], kind: str) -> tuple[str, dict[str, Any]]:
    return next((name, s) for name, s in info["sources"].items() if s["kind"] == kind)


def curl_examples(info: dict[str, Any], registry: dict[str, Any]) -> str:
    """Commands to paste, one per kind of caller; the form example carries a freshly minted link."""
    api = info["api_url"]
    _, keyed = _first(info, "api_key")
    key = keyed["api_key"]
    signer, signing = _first(info, "standard_webhooks")
    hexkey = base64.b64decode(signing["secret"].removeprefix("whsec_")).hex()
    form, _ = _first(info, "signed_link")
    iclosed = info["providers"]["iclosed"]["bookings"]
    novacal = info["providers"]["novacal"]["bookings"]
    calcom = info["providers"]["calcom"]["bookings"]
    acuity = info["providers"]["acuity"]["bookings"]
    hooked, hooked_source = next(
        (name, s) for name, s in info["sources"].items() if s["kind"] == "api_key" and "callback_url" in s
    )
    hooked_key = hooked_source["api_key"]
    sink = info["callback_sink"]
    exports = "\n".join(f"  export {name}={value}" for name, value in sorted(info["aws"]["env"].items()))
    day = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()
    link = mint_link(
        registry, source=form, provider="novacal", booking_id=novacal[1], expires_in=86400, api_url=api
    )
    posted = " ".join(
        f"--data-urlencode {name}={value}"
        for name, value in link.items()
        if name not in ("url", "hosted_url")
    )
    tally_name, tally = _first(info, "tally")
    tally_body = (
        '{"eventId": "%s", "eventType": "FORM_RESPONSE", "data": {"fields": ['
        f'{{"key": "question_hidden_1", "label": "booking_id", "value": "{novacal[4]}"}}, '
        f'{{"key": "question_date", "label": "New date", "value": "{day}"}}, '
        '{"key": "question_time", "label": "New time", "value": "17:00"}]}}'
    )
    return f"""
API key -- reschedule an iClosed booking (JSON, as Zapier sends it):
  curl -s -X POST {api}/v1/reschedules -H 'Authorization: Bearer {key}' \\
    -H 'Content-Type: application/json' -H 'Idempotency-Key: demo-1' \\
    -d '{{"provider": "iclosed", "booking_id": {iclosed[0]}, "start": "{day}T10:00:00",
         "timezone": "America/New_York"}}'

API key -- reschedule a NovaCal booking (form fields from a server):
  curl -s -X POST {api}/v1/reschedules -H 'X-Api-Key: {key}' \\
    --data-urlencode provider=novacal --data-urlencode booking_id={novacal[0]} \\
    --data-urlencode date={day} --data-urlencode time=15:30 \\
    --data-urlencode timezone=Europe/Berlin --data-urlencode duration_minutes=45

Standard Webhooks -- a signed request from source {signer!r} (needs openssl):
  body='{{"provider": "iclosed", "booking_id": {iclosed[1]}, "start": "{day}T11:00:00", "timezone": "UTC"}}'
  id="msg_demo_$RANDOM$RANDOM"; ts=$(date +%s)
  sig=$(printf '%s' "$id.$ts.$body" | openssl dgst -sha256 -mac HMAC -macopt hexkey:{hexkey} -binary | base64)
  curl -s -X POST {api}/v1/reschedules -H 'Content-Type: application/json' \\
    -H "webhook-id: $id" -H "webhook-timestamp: $ts" -H "webhook-signature: v1,$sig" -d "$body"

Signed link -- the invitee's link to the demo form page of source {form!r} (valid 24 hours):
  {link["url"]}
Or post the link's fields yourself, as the form does:
  curl -s -X POST {api}/v1/reschedules {posted} \\
    --data-urlencode date={day} --data-urlencode time=16:30 --data-urlencode timezone=Europe/Berlin
Or open the relay's own hosted page for the same link (the browser's time zone preselected):
  {link["hosted_url"]}
Mint another: make sign-link SOURCE={form} PROVIDER=novacal BOOKING={novacal[2]} EXPIRES_IN=3600

Form tool -- a Tally delivery to source {tally_name!r}, signed as Tally signs it (needs openssl; the
demo sources typeform-demo, webflow-demo, jotform-demo and fillout-demo are in .local/stack.json):
  body=$(printf '{tally_body}' "tally_demo_$RANDOM$RANDOM")
  sig=$(printf '%s' "$body" | openssl dgst -sha256 -hmac '{tally["secret"]}' -binary | base64)
  curl -s -X POST {api}{tally["intake_path"]} -H 'Content-Type: application/json' \\
    -H "Tally-Signature: $sig" -d "$body"

API key -- reschedule a Cal.com booking (it gets a new uid: the answer's new_booking_id):
  curl -s -X POST {api}/v1/reschedules -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\
    -d '{{"provider": "calcom", "booking_id": "{calcom[0]}", "start": "{day}T14:00:00Z"}}'

API key -- reschedule an Acuity appointment:
  curl -s -X POST {api}/v1/reschedules -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\
    -d '{{"provider": "acuity", "booking_id": {acuity[0]}, "start": "{day}T09:00:00",
         "timezone": "America/Chicago"}}'

Read a stored outcome, and a booking's history:
  curl -s {api}/v1/reschedules/<reschedule_id> -H 'Authorization: Bearer {key}'
  curl -s {api}/v1/bookings/iclosed/{iclosed[0]}/reschedules -H 'Authorization: Bearer {key}'

Outcome callbacks -- source {hooked!r} has one, to this stack's callback sink: move a NovaCal booking,
then see the signed event (webhook-id, webhook-timestamp, webhook-signature) the sink received:
  curl -s -X POST {api}/v1/reschedules -H 'Authorization: Bearer {hooked_key}' \\
    -H 'Content-Type: application/json' -H 'Prefer: respond-async' \\
    -d '{{"provider": "novacal", "booking_id": "{novacal[3]}", "start": "{day}T12:00:00Z"}}'
  sleep 5; curl -s {sink["deliveries_url"]}
Make the sink fail the next POST, to watch the relay retry it 5 seconds later:
  curl -s -X POST {sink["url"]}/_sink/faults -d '{{"status": 503, "times": 1}}'

The operator's tool against this stack (in another shell):
{exports}
  .venv/bin/relayctl sources list
  .venv/bin/relayctl history iclosed {iclosed[0]}
  .venv/bin/relayctl queue status
  .venv/bin/relayctl smoke --api-url {api} --api-key {key}
"""


def _answers(url: str | None) -> bool:
    """Whether something accepts connections at the URL's host and port."""
    if not url:
        return False
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        return False
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=RUNNING_PROBE_TIMEOUT_SECONDS):
            return True
    except OSError:
        return False


def reset_state(state_dir: Path | None = None) -> list[Path]:
    """Delete the local state (`STATE_ENTRIES`) under state_dir; returns what was deleted.

    Refuses (StackRunning) while the stack that wrote stack.json still answers.
    """
    state_dir = STATE_DIR if state_dir is None else state_dir
    described = state_dir / "stack.json"
    with contextlib.suppress(OSError, ValueError):
        info = json.loads(described.read_text())
        if _answers(info.get("api_url")) or _answers(info.get("dynamodb_endpoint")):
            raise StackRunning(f"the local stack in {described} is still running: stop `make run` first")
    removed = []
    for name in STATE_ENTRIES:
        path = state_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        else:
            continue
        removed.append(path)
    return removed


def reset() -> int:
    try:
        removed = reset_state()
    except StackRunning as running:
        print(running, file=sys.stderr)
        return 1
    names = ", ".join(str(path.relative_to(STATE_DIR)) for path in removed) or "nothing to delete"
    print(f"local state reset in {STATE_DIR}: {names}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.stack", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--reset", action="store_true", help="delete the local state and exit")
    if parser.parse_args(argv).reset:
        return reset()
    port = int(os.environ.get("PORT", DEFAULT_API_PORT))
    print(
        "starting the local stack (DynamoDB Local, moto: Secrets Manager and SQS, sandbox providers, API)...",
        flush=True,
    )
    # The demo form page listens next to the API (PORT+1), or on any free port when PORT is 0.
    form_port = int(os.environ.get("FORM_PORT", port + 1 if port else 0))
    stack = start_stack(persist=True, api_port=port, form_port=form_port, forget_idempotency=True)
    if stack.forgotten_idempotency_records:
        print(
            f"cleared {stack.forgotten_idempotency_records} idempotency record(s) of the previous run "
            f"(the queue is not kept; attempt history in {TABLE_NAMES['ReschedulesTable']} and the "
            "sandboxes' bookings are)",
            flush=True,
        )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        info = stack.describe()
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        (STATE_DIR / "stack.json").write_text(json.dumps(info, indent=2) + "\n")
        print(f"ready: API on {info['api_url']} (details in .local/stack.json)")
        worker = "polled by the worker" if stack.event_source else "not polled: no worker handler yet"
        print(f"delivery queue {info['queue']['url']} ({worker})")
        print(f"callback queue {info['callback_queue']['url']} (polled by the callback function)")
        print(curl_examples(info, registry(stack.sources)), flush=True)
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
