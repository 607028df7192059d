"""The Makefile's own promises: `make help` names every target a person can run."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# A rule line `name:` or `name other:`; variables, patterns and .PHONY are not targets to list.
RULE = re.compile(r"^([A-Za-z][\w-]*(?: [A-Za-z][\w-]*)*)\s*:(?!=)", re.MULTILINE)


def makefile_targets() -> set[str]:
    return {name for names in RULE.findall((REPO / "Makefile").read_text()) for name in names.split()}


def test_help_lists_every_target() -> None:
    listed = subprocess.run(
        ["make", "-s", "help"],  # noqa: S607 - make from PATH, as a person runs it
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    named = {line.split()[1] for line in listed.splitlines() if line.startswith("make ")}

    targets = makefile_targets()
    assert {"run", "reset", "test", "help"} <= targets  # the parser found the rules
    assert targets - named == set(), f"targets missing from make help: {sorted(targets - named)}"
    assert named - targets == set(), f"make help names targets that do not exist: {sorted(named - targets)}"
