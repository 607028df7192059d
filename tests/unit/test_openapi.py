"""openapi.json is generated from the handler's routes: the committed file must be current."""

from __future__ import annotations

import json
import subprocess
import sys

from tools.openapi import OPENAPI_PATH, REPO_ROOT


def test_committed_openapi_document_is_current() -> None:
    # In a child process: generating imports the handler module with placeholder settings, which
    # must not become the module the in-process tests use.
    rendered = subprocess.run(
        [sys.executable, "-c", "from tools.openapi import render; print(render(), end='')"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert OPENAPI_PATH.read_text() == rendered, "run: .venv/bin/python -m tools.openapi"


def test_document_lists_every_route_and_problem_answer() -> None:
    doc = json.loads(OPENAPI_PATH.read_text())
    post = doc["paths"]["/v1/reschedules"]["post"]
    assert set(post["requestBody"]["content"]) == {
        "application/json",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    }
    assert post["requestBody"]["content"]["application/json"]["schema"]["additionalProperties"] is False
    for status in ("400", "401", "403", "404", "409", "413", "415", "422", "429", "502", "503", "504"):
        assert "application/problem+json" in post["responses"][status]["content"]
    assert "get" in doc["paths"]["/v1/reschedules/{reschedule_id}"]
