"""The Zapier app's own tests (integrations/zapier, jest with zapier-platform-core's appTester) run
against this test session's local stack: its URL, demo keys, sandboxes and callback sink are handed
over as `RELAY_STACK` (the JSON `make run` writes to .local/stack.json). `make test` installs the
app's locked dependencies first (`make zapier-deps`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from local.stack import Stack

APP_DIR = Path(__file__).resolve().parents[2] / "integrations" / "zapier"
# The whole jest run, with its hook waits and the relay's in-request retries, stays well below this.
NPM_TEST_TIMEOUT_SECONDS = 600


def test_the_zapier_app_passes_its_tests_against_the_local_stack(stack: Stack) -> None:
    npm = shutil.which("npm")
    assert npm is not None, "the Zapier app's tests need Node.js 20+ and npm"
    assert (APP_DIR / "node_modules" / ".installed").exists(), "run: make zapier-deps"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ZAPIER_"))}
    env |= {"RELAY_STACK": json.dumps(stack.describe()), "CI": "true"}
    finished = subprocess.run(  # noqa: S603 - npm from PATH, the app's own test script
        [npm, "test", "--", "--ci"],
        cwd=APP_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=NPM_TEST_TIMEOUT_SECONDS,
        check=False,
    )
    report = finished.stdout[-4000:] + finished.stderr[-8000:]
    assert finished.returncode == 0, report
    assert "Tests:" in finished.stderr, report
    assert " failed" not in finished.stderr.split("Tests:")[-1].splitlines()[0], report
