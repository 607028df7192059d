"""``python -m local.emulator --port 3000``: the emulator in the foreground (Ctrl-C or SIGTERM stops it)."""

from __future__ import annotations

import argparse
from pathlib import Path

from local.emulator.gateway import (
    DEFAULT_CODE_DIR,
    DEFAULT_HANDLER,
    DEFAULT_TEMPLATE,
    serve_forever,
    start_emulator,
)
from local.httpserver import LOOPBACK_HOST

# The port `make run` uses for the API, and the emulator's default pool.
DEFAULT_PORT = 3000
DEFAULT_WORKERS = 4


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m local.emulator", description=__doc__)
    parser.add_argument("--handler", default=DEFAULT_HANDLER, help="module:function")
    parser.add_argument("--code-dir", type=Path, default=DEFAULT_CODE_DIR)
    parser.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE)
    parser.add_argument("--function", help="logical id of the function (default: found by handler)")
    parser.add_argument("--host", default=LOOPBACK_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    parser.add_argument("--prestart", type=int, default=1)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    env = dict(item.split("=", 1) for item in args.env)
    emulator = start_emulator(
        handler=args.handler,
        code_dir=args.code_dir,
        template=args.template,
        function=args.function,
        host=args.host,
        port=args.port,
        workers=args.workers,
        prestart=args.prestart,
        env=env,
    )
    routes = ", ".join(route.key for route in emulator.function.routes)
    print(f"API emulator on {emulator.url} -> {emulator.function.logical_id} [{routes}]", flush=True)
    serve_forever(emulator)


if __name__ == "__main__":
    main()
