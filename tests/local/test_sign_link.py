"""`make sign-link`: a link minted from the running stack's Secrets Manager moves its booking over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from local.stack import Stack
from tests.helpers import FORM, Sandbox, future

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def state_dir(stack: Stack, tmp_path: Path) -> Path:
    """What `make run` leaves in .local/: stack.json describing the running stack."""
    (tmp_path / "stack.json").write_text(json.dumps(stack.describe()))
    return tmp_path


def make_sign_link(state_dir: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    # The stamp stands in for the venv's: up to date, so make installs nothing and uses this Python.
    stamp = state_dir / "installed"
    stamp.touch()
    return subprocess.run(  # noqa: S603 - a fixed command; the arguments are the test's own
        ["make", "-s", "sign-link", f"PY={sys.executable}", f"STAMP={stamp}"]
        + [f"{name}={value}" for name, value in variables.items()],
        cwd=REPO,
        env=os.environ | {"LOCAL_STATE_DIR": str(state_dir)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def post(stack: Stack, fields: dict[str, str], **more: str) -> httpx.Response:
    assert stack.api is not None
    data = {k: v for k, v in fields.items() if k != "url"} | more
    return httpx.post(f"{stack.api.url}/v1/reschedules", data=data, timeout=30)


def test_sign_link_prints_the_hidden_fields_and_a_ready_link(
    state_dir: Path, stack: Stack, sandboxes: dict[str, Sandbox]
) -> None:
    booking = sandboxes["novacal"].bookings[4]
    done = make_sign_link(
        state_dir, SOURCE=FORM.name, PROVIDER="novacal", BOOKING=booking.upper(), EXPIRES_IN="600"
    )
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()  # one JSON object, nothing else
    link = json.loads(line)
    assert set(link) == {"source", "provider", "booking_id", "expires", "token", "url", "hosted_url"}
    assert (link["source"], link["provider"], link["booking_id"]) == (FORM.name, "novacal", booking)
    assert stack.form_page is not None
    page = urlsplit(link["url"])
    assert f"{page.scheme}://{page.netloc}{page.path}" == f"{stack.form_page.url}/reschedule"
    fields = {k: v for k, v in link.items() if k not in ("url", "hosted_url")}
    assert dict(parse_qsl(page.query)) == fields
    # And the relay's own page for the same link
    assert stack.api is not None
    hosted = urlsplit(link["hosted_url"])
    assert f"{hosted.scheme}://{hosted.netloc}{hosted.path}" == f"{stack.api.url}/v1/pages/reschedule"
    assert dict(parse_qsl(hosted.query)) == fields
    answer = post(stack, fields, start=future(days=95) + "Z")
    assert answer.status_code == 200, answer.text
    assert len(sandboxes["novacal"].calls()) == 1


def test_a_negative_expiry_mints_an_expired_link(
    state_dir: Path, stack: Stack, sandboxes: dict[str, Sandbox]
) -> None:
    done = make_sign_link(state_dir, SOURCE=FORM.name, PROVIDER="iclosed", BOOKING="1001", EXPIRES_IN="-60")
    assert done.returncode == 0, done.stderr
    answer = post(stack, json.loads(done.stdout), start=future(days=96), timezone="UTC")
    assert (answer.status_code, answer.json()["code"]) == (401, "link_expired")
    assert sandboxes["iclosed"].calls() == []


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"SOURCE": "zapier-demo", "PROVIDER": "novacal", "BOOKING": "1"}, "is not a signed_link source"),
        ({"SOURCE": FORM.name, "PROVIDER": "novacal", "BOOKING": "1001"}, "booking '1001'"),
        ({"SOURCE": FORM.name, "PROVIDER": "iclosed", "BOOKING": "1001", "ACCOUNT": "eu"}, "may not use"),
    ],
)
def test_wrong_arguments_fail_with_one_line(state_dir: Path, variables: dict[str, str], message: str) -> None:
    done = make_sign_link(state_dir, **variables)
    assert done.returncode != 0
    assert done.stdout == ""
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 2  # the message, and make's own "Error 1" line


def test_without_a_running_stack_it_fails_with_one_line(tmp_path: Path) -> None:
    missing = make_sign_link(tmp_path, SOURCE=FORM.name, PROVIDER="iclosed", BOOKING="1001")
    # A stack.json left behind by a stack that is gone: its endpoint answers nobody.
    (tmp_path / "stack.json").write_text(json.dumps({"secrets_endpoint": "http://127.0.0.1:9"}))
    stale = make_sign_link(tmp_path, SOURCE=FORM.name, PROVIDER="iclosed", BOOKING="1001")
    for done in (missing, stale):
        assert done.returncode != 0
        assert (
            done.stderr.splitlines()[0]
            == "sign-link: the local stack is not running (start it with `make run`)"
        )
