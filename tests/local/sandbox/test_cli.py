"""Starting and stopping sandboxes, in process and from the command line."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from local.sandbox import PROVIDERS, start_sandbox
from tests.local.sandbox.helpers import HTTP, TIMEOUT, send_valid, valid_novacal_body

REPO_ROOT = Path(__file__).resolve().parents[3]
# What a shell does to a background job (`cmd &`): SIGINT ignored, which exec keeps and Python honours.
START_WITH_SIGINT_IGNORED = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "os.execv(sys.executable, [sys.executable, '-m', 'local.sandbox', *sys.argv[1:]])"
)
CLI_STOP_TIMEOUT_SECONDS = 10


def test_start_sandbox_rejects_unknown_providers_and_bad_tokens() -> None:
    assert PROVIDERS == ("iclosed", "novacal", "calcom", "acuity")
    with pytest.raises(ValueError, match="unknown sandbox provider"):
        start_sandbox("calendly")
    with pytest.raises(ValueError, match="token"):
        start_sandbox("iclosed", token="")
    # Acuity's credential is two values: a numeric user id and a key
    for not_basic in ("sandbox-acuity-key", "user:key", "10001:"):
        with pytest.raises(ValueError, match="user id"):
            start_sandbox("acuity", token=not_basic)


def test_stop_closes_listener_and_open_connections_and_is_idempotent() -> None:
    provider = start_sandbox("novacal", token="stop-test-token")
    client = httpx.Client(base_url=provider.url, timeout=TIMEOUT)
    try:
        assert send_valid(provider, client).status_code == 200  # leaves a kept-alive connection

        provider.stop()
        provider.stop()

        with pytest.raises(httpx.ConnectError):
            HTTP.get(f"{provider.url}/_sandbox/stats")
        with pytest.raises(httpx.TransportError):
            send_valid(provider, client)
    finally:
        client.close()


@pytest.mark.parametrize("as_background_job", [False, True], ids=["foreground", "background"])
def test_cli_serves_until_interrupted(as_background_job: bool) -> None:
    arguments = ["novacal", "--port", "0", "--token", "cli-token"]
    if as_background_job:
        command = [sys.executable, "-c", START_WITH_SIGINT_IGNORED, *arguments]
    else:
        command = [sys.executable, "-m", "local.sandbox", *arguments]
    process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        ready = json.loads(process.stdout.readline())
        assert set(ready) == {"provider", "url", "token", "bookings"}
        assert ready["provider"] == "novacal"
        assert ready["token"] == "cli-token"
        assert len(ready["bookings"]) == 5
        url = f"{ready['url']}/v1/events/{ready['bookings'][0]}"
        response = HTTP.put(url, json=valid_novacal_body(), headers={"Authorization": "Bearer cli-token"})
        assert response.status_code == 200

        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=CLI_STOP_TIMEOUT_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
    assert "Traceback" not in stderr
    assert re.search(r'"PUT /v1/events/\S+ HTTP/1.1" 200', stderr)


def test_cli_stops_on_sigterm() -> None:
    command = [sys.executable, "-m", "local.sandbox", "acuity", "--port", "0"]
    process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        ready = json.loads(process.stdout.readline())
        assert ready["provider"] == "acuity"
        assert ready["bookings"] == ["700001", "700002", "700003", "700004", "700005"]
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=CLI_STOP_TIMEOUT_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
