"""Run one provider sandbox in the foreground: `python -m local.sandbox iclosed --port 4010 --token X`.

Prints one JSON line (provider, url, token, bookings) once listening, then an access-log line per
request on stderr; Ctrl-C or SIGTERM stops it cleanly.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from types import FrameType

from local.sandbox.server import DEFAULT_TOKENS, PROVIDERS, start_sandbox

# How often the main thread wakes to see whether a stop signal arrived.
STOP_POLL_SECONDS = 0.5


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m local.sandbox", description=__doc__)
    parser.add_argument("provider", choices=PROVIDERS)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one (default)")
    parser.add_argument(
        "--token",
        help="accepted bearer token; acuity: '<user id>:<api key>' (default: the sandbox's own)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    token = args.token if args.token is not None else DEFAULT_TOKENS[args.provider]
    sandbox = start_sandbox(args.provider, token=token, host=args.host, port=args.port, access_log=True)
    stop_requested = threading.Event()

    def _on_stop_signal(_signum: int, _frame: FrameType | None) -> None:
        stop_requested.set()

    # SIGINT explicitly too: Python leaves it ignored when started as a background job (`cmd &`).
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _on_stop_signal)
    ready = {
        "provider": sandbox.name,
        "url": sandbox.url,
        "token": sandbox.token,
        "bookings": sandbox.bookings,
    }
    print(json.dumps(ready), flush=True)
    try:
        # Short waits keep the main thread responsive to signals on every platform.
        while not stop_requested.wait(STOP_POLL_SECONDS):
            pass
    finally:
        sandbox.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
