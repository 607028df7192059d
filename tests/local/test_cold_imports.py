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
