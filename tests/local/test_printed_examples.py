"""Every command `make run` prints works on the first run and again after a restart.

The examples are taken from the very text `make run` prints (local.stack.curl_examples) and run with
bash and curl, as a person pasting them would. Between the runs the stack stops and starts again on
the same state directory, as a second `make run` does: the relay's history (DynamoDB Local) and the
sandboxes' bookings must still agree (the Cal.com example follows a uid the sandbox must still know).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from local.seed import registry
from local.stack import Stack, curl_examples, start_stack

# Each printed curl reports its HTTP status on a line of its own after the body.
STATUS_MARK = "__http_status__="
CURL_WITH_STATUS = f"curl -s -w '\\n{STATUS_MARK}%{{http_code}}\\n' "
# The callbacks example waits 5 s for the worker; the rest answer in well under this.
EXAMPLE_TIMEOUT_SECONDS = 60
# Examples not run: the operator's tool (needs the exported environment in another shell).
NOT_RUN_PREFIXES = ("export ", "http://", "https://")

BASH = shutil.which("bash") or "/bin/bash"

pytestmark = pytest.mark.skipif(
    shutil.which("curl") is None or shutil.which("openssl") is None,
    reason="the printed examples need curl and openssl",
)


def restarted(state_dir: Path) -> Stack:
    """A `make run` on this state directory (persisted, idempotency records of the last run forgotten)."""
    return start_stack(persist=True, state_dir=state_dir, api_port=0, workers=2, forget_idempotency=True)


def printed_commands(stack: Stack) -> list[tuple[str, str]]:
    """(title, script) per printed example: the indented lines under each unindented title."""
    text = curl_examples(stack.describe(), registry(stack.sources))
    groups: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            groups.append((line, []))
        elif groups:
            groups[-1][1].append(line[2:])
    commands = []
    for title, lines in groups:
        script = "\n".join(lines)
        if script and not script.startswith(NOT_RUN_PREFIXES) and "relayctl" not in script:
            commands.append((title, script))
    return commands


def run(title: str, script: str, reschedule_id: str | None) -> tuple[list[int], list[str]]:
    """Run one printed example with bash: the HTTP status of each curl in it, and each body."""
    if "<reschedule_id>" in script:
        assert reschedule_id is not None, "no answer yet carried a reschedule_id"
        script = script.replace("<reschedule_id>", reschedule_id)
    # The printed text is the stack's own output, run on purpose as a person pasting it would.
    done = subprocess.run(  # noqa: S603
        [BASH, "-c", script.replace("curl -s ", CURL_WITH_STATUS)],
        capture_output=True,
        text=True,
        timeout=EXAMPLE_TIMEOUT_SECONDS,
        check=False,
    )
    assert done.returncode == 0, f"{title}\n{script}\n{done.stderr}"
    statuses = [int(s) for s in re.findall(rf"^{STATUS_MARK}(\d+)$", done.stdout, re.MULTILINE)]
    bodies = [part.strip() for part in re.split(rf"^{STATUS_MARK}\d+$", done.stdout, flags=re.MULTILINE)][:-1]
    return statuses, bodies


def run_every_example(stack: Stack) -> dict[str, list[int]]:
    """Run them all in the printed order; each answers 2xx (a form post may redirect to its page)."""
    outcomes: dict[str, list[int]] = {}
    reschedule_id = None
    for title, script in printed_commands(stack):
        statuses, bodies = run(title, script, reschedule_id)
        assert statuses, f"no curl ran in: {title}"
        for status, body in zip(statuses, bodies, strict=True):
            assert 200 <= status < 300 or status == 303, f"{title} answered {status}: {body}"
            if body.startswith("{"):
                answer = json.loads(body)
                reschedule_id = answer.get("reschedule_id", reschedule_id)
                assert answer.get("status") not in ("failed",), f"{title}: {body}"
        outcomes[title] = statuses
    return outcomes


def test_every_printed_example_works_again_after_a_restart(tmp_path: Path) -> None:
    # Given a first `make run` where every printed example works
    with restarted(tmp_path) as first:
        first_outcomes = run_every_example(first)
        calcom = first.sandboxes["calcom"]
        moved = [b for b in _bookings(calcom.url) if b.get("rescheduledFromUid")]
        assert moved, "the Cal.com example moved no booking"

    # When the stack restarts on the same state
    with restarted(tmp_path) as second:
        # Then the sandbox still knows the bookings the first run made (the history's uids)
        uids = {b["uid"] for b in _bookings(second.sandboxes["calcom"].url)}
        assert {b["uid"] for b in moved} <= uids
        # and every example works again, the same way
        second_outcomes = run_every_example(second)
        assert second_outcomes.keys() == first_outcomes.keys()
        assert any("Cal.com" in title for title in second_outcomes)


def _bookings(url: str) -> list[dict[str, object]]:
    answer: list[dict[str, object]] = httpx.get(f"{url}/_sandbox/bookings", timeout=10).json()
    return answer
