"""Running one measuring child process: it reads its spec as JSON on stdin and writes its result as
JSON to the path it is given; the relay's own logs go to its stdout, which is not kept."""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def run_json_child(
    command: Sequence[str],
    spec: Mapping[str, Any],
    *,
    env: Mapping[str, str],
    cwd: Path,
    timeout_s: float,
    what: str,
) -> tuple[dict[str, Any], str]:
    """`command` + a result path, run with `spec` on stdin; its result and its stderr."""
    with tempfile.TemporaryDirectory(prefix="bench-child-") as tmp:
        result_path = Path(tmp) / "result.json"
        done = subprocess.run(  # noqa: S603 - our own interpreter and module
            [*command, str(result_path)],
            input=json.dumps(spec),
            stdout=subprocess.DEVNULL,  # the relay's JSON logs
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
            env=dict(env),
            timeout=timeout_s,
            check=False,
        )
        if done.returncode != 0 or not result_path.exists():
            raise RuntimeError(f"{what} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(result_path.read_text())
    return result, done.stderr
