"""What a cold start imports: modules the first request does not need stay out of init (issue 11)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHILD_TIMEOUT_SECONDS = 60
# Imported on first use only: (module, what would need it).
LAZY = {"email.parser": "multipart bodies", "email.policy": "multipart bodies"}
_PROBE = """
import json, sys
from relay.web import decoding
decoding.decode_body(b'{"provider": "iclosed"}', "application/json")
print(json.dumps(sorted(sys.modules)))
"""


def test_a_json_body_loads_no_multipart_parser() -> None:
    done = subprocess.run(  # noqa: S603 - our own interpreter on our own module
        [sys.executable, "-c", _PROBE],
        env={**os.environ, "PYTHONPATH": str(REPO / "functions" / "reschedule")},
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_SECONDS,
        check=True,
    )
    loaded = set(json.loads(done.stdout))

    assert "relay.web.decoding" in loaded
    assert not loaded & set(LAZY), {name: LAZY[name] for name in loaded & set(LAZY)}


# Not loaded by the HTTP door at all: (package, why). Powertools' event_handler package loads every
# resolver and event class it has (about 60 ms of a cold start); the door routes itself (relay/web/http.py).
NOT_LOADED = {
    "aws_lambda_powertools.event_handler": "the door's own router replaces the resolver",
    "aws_lambda_powertools.utilities.data_classes": "the door reads the event dict itself",
    "asyncio": "nothing the door runs is async",
    "aws_lambda_powertools.utilities.idempotency": "the relay's own ledger (relay/dal/ledger.py) replaces it",
}
_APP_PROBE = """
import json, sys
import app
print(json.dumps(sorted(sys.modules)))
"""
_APP_ENV = {
    "IDEMPOTENCY_TABLE_NAME": "relay-idempotency",
    "RESCHEDULES_TABLE_NAME": "relay-reschedules",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "true",
}


def test_the_http_door_loads_no_powertools_resolver() -> None:
    done = subprocess.run(  # noqa: S603 - our own interpreter on our own module
        [sys.executable, "-c", _APP_PROBE],
        # No SECRETS_PREFIX: init then reads nothing (relay/prefetch.py), so no AWS endpoint is needed.
        env={
            **{k: v for k, v in os.environ.items() if k != "SECRETS_PREFIX"},
            **_APP_ENV,
            "PYTHONPATH": str(REPO / "functions" / "reschedule"),
        },
        cwd=REPO / "functions" / "reschedule",
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_SECONDS,
        check=True,
    )
    loaded = set(json.loads(done.stdout.splitlines()[-1]))

    assert "app" in loaded
    assert "relay.dal.ledger" in loaded  # the probe saw a real init
    hit = {name: why for name, why in NOT_LOADED.items() if name in loaded}
    assert hit == {}
