"""`relayctl smoke`: prove in seconds that a deployed relay answers as it should, moving nothing.

Three calls: a `dry_run` reschedule (authenticated, validated, no provider call), a lookup of an id
that does not exist (a 404 problem), and an unauthenticated call (a 401 problem).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from relayctl.errors import ToolError
from relayctl.output import emit_json, say

# The whole smoke test must finish well inside 10 s.
TIMEOUT_SECONDS = 3.0
PROBLEM_JSON = "application/problem+json"
# The key never comes from argv: the process list and the shell's history would show it.
API_KEY_VARIABLE = "RELAY_API_KEY"


def _api_key(args: argparse.Namespace) -> str:
    if args.api_key is not None:
        raise ToolError(
            f"smoke: --api-key is not taken (argv shows in ps and shell history); "
            f"set {API_KEY_VARIABLE} or pipe the key on stdin",
            2,
        )
    key = os.environ.get(API_KEY_VARIABLE, "").strip()
    if not key:
        key = getpass.getpass("API key: ") if sys.stdin.isatty() else sys.stdin.readline().strip()
    if not key:
        raise ToolError(f"smoke: no API key: set {API_KEY_VARIABLE} or pipe the key on stdin", 2)
    return key


def _check(name: str, response: httpx.Response, status: int, problem: bool) -> str | None:
    if response.status_code != status:
        return f"{name}: expected {status}, got {response.status_code}"
    if problem and not response.headers.get("content-type", "").startswith(PROBLEM_JSON):
        return f"{name}: expected a problem+json answer, got {response.headers.get('content-type')!r}"
    return None


def smoke_command(_target: Any, args: argparse.Namespace) -> int:
    base = args.api_url.rstrip("/")
    auth = {"authorization": f"Bearer {_api_key(args)}"}
    start = (datetime.now(UTC) + timedelta(days=7)).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    body = {"provider": args.provider, "booking_id": args.booking_id, "start": start, "dry_run": True}
    started = time.monotonic()
    results: list[dict[str, Any]] = []
    try:
        with httpx.Client(timeout=TIMEOUT_SECONDS, follow_redirects=False) as http:
            checks = [
                (
                    "dry_run reschedule",
                    http.post(f"{base}/v1/reschedules", json=body, headers=auth),
                    200,
                    False,
                ),
                (
                    "lookup of an unknown id",
                    http.get(f"{base}/v1/reschedules/{uuid.uuid4()}", headers=auth),
                    404,
                    True,
                ),
                ("unauthenticated call", http.post(f"{base}/v1/reschedules", json=body), 401, True),
            ]
    except httpx.HTTPError as exc:
        raise ToolError(f"smoke: {base} could not be reached ({type(exc).__name__})") from None
    failures = []
    for name, response, status, problem in checks:
        failure = _check(name, response, status, problem)
        if failure is None and name.startswith("dry_run"):
            answer = response.json()
            if answer.get("status") != "validated" or answer.get("dry_run") is not True:
                failure = f"{name}: the answer is not a validated dry run (status {answer.get('status')!r})"
        results.append({"check": name, "status": response.status_code, "ok": failure is None})
        if failure:
            failures.append(failure)
    elapsed = round(time.monotonic() - started, 2)
    if args.json:
        emit_json({"ok": not failures, "seconds": elapsed, "checks": results})
    if failures:
        raise ToolError("smoke: " + "; ".join(failures))
    if not args.json:
        say(f"smoke: ok ({len(results)} checks in {elapsed} s; no booking was moved)")
    return 0


def register(commands: Any) -> None:
    smoke = commands.add_parser(
        "smoke",
        help=f"check a deployed API answers as it should (moves nothing); key: {API_KEY_VARIABLE} or stdin",
    )
    smoke.add_argument("--api-url", required=True, help="the stack's ApiUrl output")
    # Refused with a pointer to the right way: the key comes from RELAY_API_KEY or stdin.
    smoke.add_argument("--api-key", default=None, help=argparse.SUPPRESS)
    smoke.add_argument("--provider", default="iclosed", help="a provider that key may use (default iclosed)")
    smoke.add_argument("--booking-id", default="1001", help="any well-formed booking id (it is not moved)")
    smoke.set_defaults(run=smoke_command, needs_aws=False)
