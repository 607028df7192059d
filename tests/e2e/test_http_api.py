"""HTTP through the API emulator, as `curl` or Zapier would call the relay."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from local.stack import Stack
from tests.helpers import ZAPIER, Sandbox, future, new_key

REPO = Path(__file__).resolve().parents[2]
AUTH = {"Authorization": f"Bearer {ZAPIER.api_key}"}


def test_twenty_identical_requests_in_parallel_call_the_provider_once(
    stack: Stack, sandboxes: dict[str, Sandbox]
) -> None:
    # Given a slow provider, so the first request still holds the lock while the others arrive
    sandboxes["novacal"].fault(delay_ms=400, times=1)
    body = {
        "provider": "novacal",
        "booking_id": sandboxes["novacal"].bookings[4],
        "start": future(days=60) + "Z",
    }
    headers = AUTH | {"Idempotency-Key": new_key()}
    assert stack.api is not None

    # When 20 identical requests arrive at once
    assert stack.api is not None
    api_url = stack.api.url

    def send(_: int) -> httpx.Response:
        return httpx.post(f"{api_url}/v1/reschedules", json=body, headers=headers, timeout=30)

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(send, range(20)))

    # Then the provider is called exactly once and every answer is a success, a replay or "in progress"
    statuses = [a.status_code for a in answers]
    assert set(statuses) <= {200, 409}, statuses
    assert statuses.count(200) >= 1
    assert len(sandboxes["novacal"].calls()) == 1
    ids = {a.json()["reschedule_id"] for a in answers if a.status_code == 200}
    assert len(ids) == 1
    for answer in answers:
        if answer.status_code == 409:
            assert answer.headers["retry-after"] == "1"
            assert answer.headers["content-type"] == "application/problem+json"


def test_website_form_post_over_http(stack: Stack, sandboxes: dict[str, Sandbox]) -> None:
    assert stack.api is not None
    form = {
        "provider": "iclosed",
        "id": "1001",
        "date": future(days=61)[:10],
        "time": "4:45 PM",
        "timezone": "America/Denver",
        "notes": "from the site",
    }
    answer = httpx.post(f"{stack.api.url}/v1/reschedules", data=form, headers=AUTH, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["start"].endswith("T16:45:00-07:00")
    assert sandboxes["iclosed"].calls()[0]["body"]["dateTime"].endswith("T16:45:00")


def test_multipart_post_and_get_over_http(stack: Stack, sandboxes: dict[str, Sandbox]) -> None:
    assert stack.api is not None
    fields = {"provider": "iclosed", "booking_id": "1002", "start": future(days=62) + "-03:00"}
    answer = httpx.post(
        f"{stack.api.url}/v1/reschedules",
        files={k: (None, v) for k, v in fields.items()},
        headers=AUTH,
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    stored = httpx.get(
        f"{stack.api.url}/v1/reschedules/{answer.json()['reschedule_id']}", headers=AUTH, timeout=30
    )
    assert stored.status_code == 200
    assert stored.json()["provider_status"] == 200


def test_problem_json_over_http(stack: Stack) -> None:
    assert stack.api is not None
    answer = httpx.post(
        f"{stack.api.url}/v1/reschedules",
        content=b"<xml/>",
        timeout=30,
        headers=AUTH | {"Content-Type": "application/xml"},
    )
    assert answer.status_code == 415
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "unsupported_media_type"
    assert httpx.get(f"{stack.api.url}/v1/nothing", timeout=30).status_code == 404


def _command_groups(printed: str) -> list[str]:
    """The runs of indented lines in `make run`'s examples: each a command (or a link) to paste."""
    groups: list[list[str]] = [[]]
    for line in printed.splitlines():
        if line.startswith("  "):
            groups[-1].append(line.strip())
        elif groups[-1]:
            groups.append([])
    return ["\n".join(group) for group in groups if group]


def test_make_run_entry_point_writes_stack_json_and_stops_cleanly(tmp_path: Path) -> None:
    env = os.environ | {"PORT": "0", "LOCAL_STATE_DIR": str(tmp_path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "local.stack"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []

    def drain() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 90
        while not any(line.startswith("Ctrl-C stops everything") for line in lines):
            assert process.poll() is None, "".join(lines)
            assert time.monotonic() < deadline
            time.sleep(0.2)
        info = json.loads((tmp_path / "stack.json").read_text())
        source = info["sources"]["zapier-demo"]
        answer = httpx.post(
            f"{info['api_url']}/v1/reschedules",
            timeout=30,
            headers={"Authorization": f"Bearer {source['api_key']}"},
            json={
                "provider": "novacal",
                "booking_id": info["providers"]["novacal"]["bookings"][0],
                "start": future(days=63) + "Z",
            },
        )
        assert answer.status_code == 200, answer.text
        # Every kind of caller is described with what it needs
        kinds = {name: s["kind"] for name, s in info["sources"].items()}
        assert set(kinds.values()) == {
            "api_key",
            "standard_webhooks",
            "signed_link",
            *("typeform", "tally", "webflow", "jotform", "fillout"),
        }
        assert info["sources"]["signing-demo"]["secret"].startswith("whsec_")
        form = info["sources"]["form-demo"]
        assert {"link_secret", "origins", "honeypot", "form_url", "success_url", "error_url"} <= set(form)
        # The printed examples work as pasted: API key, Standard Webhooks (openssl) and the link's fields
        printed = "".join(lines)
        assert f"{form['form_url']}?source=form-demo&provider=novacal" in printed
        assert "make sign-link SOURCE=form-demo" in printed
        commands = [
            c
            for c in _command_groups(printed)
            if c.startswith(("curl -s -X POST", "body=")) and "/_sink/faults" not in c  # not the sink switch
        ]
        # iClosed, NovaCal, Cal.com, Acuity, signed, link fields, Tally, and the queued one with a callback
        assert len(commands) == 8, commands
        for command in commands:
            if "openssl" in command and shutil.which("openssl") is None:
                continue  # the example says it needs openssl
            done = subprocess.run(  # noqa: S603 - the stack's own printed example, as a user pastes it
                ["/bin/bash", "-c", command], capture_output=True, text=True, timeout=60, check=False
            )
            expected = "queued" if "respond-async" in command else "succeeded"
            # The first JSON document is the relay's answer (the callback example then lists the sink).
            answered, _ = json.JSONDecoder().raw_decode(done.stdout)
            assert answered.get("status") == expected, (command, done.stdout, done.stderr)
        # The queued example's outcome reaches the callback sink, as the printed text says it will.
        deadline = time.monotonic() + 30
        while not httpx.get(info["callback_sink"]["deliveries_url"]).json():
            assert time.monotonic() < deadline, "no callback reached the sink"
            time.sleep(0.5)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        reader.join(timeout=10)
    assert process.returncode == 0, "".join(lines)
    assert not (tmp_path / "stack.json").exists()
    assert (tmp_path / "dynamodb-data").is_dir()


def _raw_post(stack: Stack, content_length: str, body: bytes) -> bytes:
    assert stack.api is not None
    with socket.create_connection(("127.0.0.1", stack.api.port), timeout=10) as conn:
        conn.sendall(
            b"POST /v1/reschedules HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {ZAPIER.api_key}\r\nContent-Length: {content_length}\r\n".encode()
            + b"Connection: close\r\n\r\n"
            + body
        )
        conn.shutdown(socket.SHUT_WR)
        return conn.recv(65536)


@pytest.mark.parametrize(
    ("content_length", "body"),
    [("3", b'{"provider": "iclosed"}'), ("500", b'{"provider": "iclosed"}'), ("abc", b"{}"), ("-5", b"{}")],
)
def test_wrong_content_length_gets_a_clear_400_or_422(stack: Stack, content_length: str, body: bytes) -> None:
    answer = _raw_post(stack, content_length, body)
    status = int(answer.split(b" ", 2)[1])
    assert status in (400, 422), answer
