"""Hostile inputs through the real handler: the answer, the CPU spent before it, the longest log line.

    .venv/bin/python -m tools.hostile_probe

Starts the local stack (as the tests do), imports the handler in this process, sends each input
once (after one warm-up request) and prints a table. docs/security.md's figures come from it.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "functions" / "reschedule")]

from local.stack import start_stack  # noqa: E402 - the function's code directory goes on the path first
from tests.helpers import ZAPIER, Invoker  # noqa: E402

JSON = "application/json"
MULTIPART = "multipart/form-data; boundary=x"
NO_KEY = None


def _part(header_tail: str) -> str:
    return f'--x\r\nContent-Disposition: form-data; name="a"{header_tail}\r\n\r\nv\r\n--x--\r\n'


def _parts(count: int) -> str:
    return (
        "".join(f'--x\r\nContent-Disposition: form-data; name="f{i}"\r\n\r\nv\r\n' for i in range(count))
        + "--x--\r\n"
    )


# (name, method, path, body, content type, API key)
CASES: list[tuple[str, str, str, str, str | None, str | None]] = [
    (
        "1.2 KB nested arrays, no credentials",
        "POST",
        "/v1/reschedules",
        '{"a":' + "[" * 600 + "]" * 600 + "}",
        JSON,
        NO_KEY,
    ),
    (
        "1.2 KB nested arrays, API key",
        "POST",
        "/v1/reschedules",
        '{"a":' + "[" * 600 + "]" * 600 + "}",
        JSON,
        ZAPIER.api_key,
    ),
    (
        "multipart 50 KB of ';', no credentials",
        "POST",
        "/v1/reschedules",
        _part(";" * 50_000),
        MULTIPART,
        NO_KEY,
    ),
    (
        "multipart nested comments, no credentials",
        "POST",
        "/v1/reschedules",
        _part(" " + "(" * 20_000),
        MULTIPART,
        NO_KEY,
    ),
    ("multipart 1,100 parts, no credentials", "POST", "/v1/reschedules", _parts(1100), MULTIPART, NO_KEY),
    (
        "7,000 form fields, no credentials",
        "POST",
        "/v1/reschedules",
        "&".join(f"a{i}=1" for i in range(7000)),
        "application/x-www-form-urlencoded",
        NO_KEY,
    ),
    (
        "60 KB Content-Type, no credentials",
        "POST",
        "/v1/reschedules",
        "{}",
        "multipart/form-data; boundary=" + "b" * 60_000,
        NO_KEY,
    ),
    ("limit=\u00b2", "GET", "/v1/bookings/iclosed/1001/reschedules?limit=%C2%B2", "", None, ZAPIER.api_key),
    (
        "30,000-character field name twice (form)",
        "POST",
        "/v1/reschedules",
        f"provider=iclosed&id=1001&{'k' * 30_000}=1&{'k' * 30_000}=2",
        "application/x-www-form-urlencoded",
        ZAPIER.api_key,
    ),
]


def _capture(logger_name: str) -> tuple[io.StringIO, Callable[[], None]]:
    buffer = io.StringIO()
    handlers = logging.getLogger(logger_name).handlers
    previous = [handler.setStream(buffer) for handler in handlers]  # type: ignore[attr-defined]

    def restore() -> None:
        for handler, stream in zip(handlers, previous, strict=True):
            handler.setStream(stream)  # type: ignore[attr-defined]

    return buffer, restore


def main() -> None:
    with start_stack(api_port=0, workers=1) as stack:
        os.environ.update(stack.env)
        import app  # noqa: PLC0415 - the module reads its settings at import

        invoke = Invoker(app)
        invoke("GET", "/v1/reschedules/warm-up")
        print(f"{'input':44} {'status':>6} {'CPU ms':>9} {'answer B':>9} {'longest log B':>14}")
        for name, method, path, body, content_type, key in CASES:
            buffer, restore = _capture(app.logger.service)
            started = time.process_time()
            answer: Any = invoke(method, path, body=body, content_type=content_type, key=key)
            cpu_ms = (time.process_time() - started) * 1000
            restore()
            longest = max((len(line) for line in buffer.getvalue().splitlines()), default=0)
            print(
                f"{name:44} {answer.status:>6} {cpu_ms:>9.1f} {len(json.dumps(answer.body)):>9} {longest:>14}"
            )


if __name__ == "__main__":
    main()
