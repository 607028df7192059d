"""The emulator itself: API Gateway's routing and limits in front of a pool of Lambda workers."""

from __future__ import annotations

import json
import secrets
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from local.emulator.events import build_event, new_request_id
from local.emulator.responses import HttpResponse, MalformedResponseError, gateway_error, to_http_response
from local.emulator.routes import INTEGRATION_TIMEOUT_MS, match_route, read_function_config
from local.emulator.server import MAX_REQUEST_BODY_BYTES, EmulatorHTTPServer
from local.emulator.workers import PoolBusyError, PoolClosedError, WorkerInitError, WorkerPool, WorkerSpec
from local.httpserver import LOOPBACK_HOST

# Lambda's synchronous invocation limit, for the event and for the handler's result alike.
LAMBDA_PAYLOAD_LIMIT_BYTES = 6 * 1024 * 1024

# Signals that stop a foreground emulator, and how often it checks for them.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
STOP_POLL_SECONDS = 0.5

DEFAULT_HANDLER = "app:lambda_handler"
DEFAULT_CODE_DIR = Path("functions/reschedule")
DEFAULT_TEMPLATE = Path("template.yaml")


class ApiEmulator:
    """API Gateway HTTP API + Lambda, locally (see the package docstring).

    - ``handler``: ``module:function`` inside ``code_dir``, the function's CodeUri (first on the
      workers' ``sys.path`` and their working directory, like ``/var/task``)
    - ``template``: the SAM template with the function (its Timeout, MemorySize, HttpApi events)
    - ``function``: the function's logical id, when the template has several and the handler
      alone does not tell which
    - ``workers``: most containers at once; ``prestart``: containers ``start()`` starts and waits for
    - ``env``: variables set in the workers on top of the inherited environment
    - ``timeout_s``: overrides the function's Timeout (tests of the timeout path)
    - ``access_log``: one line per request on stderr
    """

    def __init__(
        self,
        *,
        handler: str = DEFAULT_HANDLER,
        code_dir: Path = DEFAULT_CODE_DIR,
        template: Path = DEFAULT_TEMPLATE,
        host: str = LOOPBACK_HOST,
        port: int = 0,
        workers: int = 4,
        env: Mapping[str, str] | None = None,
        prestart: int = 1,
        function: str | None = None,
        timeout_s: float | None = None,
        access_log: bool = True,
    ) -> None:
        module, sep, attribute = handler.partition(":")
        if not (module and sep and attribute):
            raise ValueError(f"handler must be 'module:function', got {handler!r}")
        self.function = read_function_config(Path(template), handler=handler, function=function)
        if timeout_s is not None:
            self.function = replace(self.function, timeout_s=timeout_s)
        self.host = host
        self.access_log = access_log
        self._requested_port = port
        self._prestart = prestart
        spec = WorkerSpec(
            handler=handler,
            code_dir=str(Path(code_dir).resolve()),
            function_name=self.function.function_name,
            memory_mb=self.function.memory_mb,
            env={str(name): str(value) for name, value in (env or {}).items()},
        )
        self._pool = WorkerPool(spec, workers)
        self._server: EmulatorHTTPServer | None = None
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()

    # lifecycle

    def start(self) -> ApiEmulator:
        """Pre-start workers, then listen; returns once the server accepts connections."""
        try:
            self._pool.prestart(self._prestart)
            self._server = EmulatorHTTPServer(
                (self.host, self._requested_port), self, access_log=self.access_log
            )
        except BaseException:
            self._pool.close()
            raise
        self._server.start_in_thread("api-emulator")
        return self

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        return self._server.port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (for tests and diagnostics)."""
        return self._pool.pids()

    def stop(self) -> None:
        """Stop the HTTP server and every worker process. Idempotent."""
        with self._stop_lock:
            if self._stopped.is_set():
                return
            self._stopped.set()
        if self._server is not None:
            self._server.stop()
        self._pool.close()

    def serve_forever(self) -> None:
        """Block until ``stop()`` or Ctrl-C/SIGTERM, then stop.

        SIGINT gets its own handler: a shell starts background jobs with SIGINT ignored, and
        ``kill -INT`` must stop the emulator there too.
        """
        previous: dict[signal.Signals, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                previous[signum] = signal.signal(signum, _raise_keyboard_interrupt)
        try:
            while not self._stopped.wait(STOP_POLL_SECONDS):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def __enter__(self) -> ApiEmulator:
        return self if self._server is not None else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # requests

    def dispatch(
        self,
        *,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        source_ip: str = LOOPBACK_HOST,
        request_id: str | None = None,
    ) -> HttpResponse:
        """One HTTP request through API Gateway's routing and the Lambda function."""
        request_id = request_id or new_request_id()
        if target.startswith(("http://", "https://")):  # absolute-form request target
            parts = urlsplit(target)
            target = parts.path + (f"?{parts.query}" if parts.query else "")
        path, _, raw_query = target.partition("?")
        if len(body) > MAX_REQUEST_BODY_BYTES:
            return gateway_error(413, "Request Entity Too Large")
        matched = match_route(self.function.routes, method, path)
        if matched is None:
            return gateway_error(404, "Not Found")
        route, path_parameters = matched
        event = build_event(
            method=method,
            raw_path=path,
            raw_query=raw_query,
            headers=headers,
            body=body,
            source_ip=source_ip,
            route_key=route.key,
            path_parameters=path_parameters if route.path and "{" in route.path else None,
            request_id=request_id,
        )
        return self.invoke(event, integration_timeout_ms=route.integration_timeout_ms)

    def invoke(
        self, event: dict[str, Any], *, integration_timeout_ms: int = INTEGRATION_TIMEOUT_MS
    ) -> HttpResponse:
        """Invoke the function with an event as API Gateway would, and map its result to HTTP."""
        event_json = json.dumps(event)
        if len(event_json.encode()) > LAMBDA_PAYLOAD_LIMIT_BYTES:
            _log("event exceeds Lambda's 6 MB invocation payload limit")
            return gateway_error(500, "Internal Server Error")
        try:
            kind, payload = self._run(event_json, event, integration_timeout_ms / 1000)
        except (PoolClosedError, PoolBusyError):
            return gateway_error(503, "Service Unavailable")
        except WorkerInitError as exc:
            _log(str(exc))
            return gateway_error(500, "Internal Server Error")
        return _result_to_http(kind, payload)

    def _run(
        self, event_json: str, event: dict[str, Any], integration_timeout_s: float
    ) -> tuple[str, str | None]:
        """One invocation on an idle worker: ``(kind, result JSON)``, see ``Worker.invoke``."""
        worker = self._pool.acquire(wait_s=integration_timeout_s)
        aws_request_id = str(uuid.uuid4())
        started = time.time()
        deadline_ms = int((started + self.function.timeout_s) * 1000)
        trace_header = (event.get("headers") or {}).get("x-amzn-trace-id", "").split(";", 1)[0]
        trace_header = trace_header or f"Root=1-{int(started):08x}-{secrets.token_hex(12)}"
        kind, payload = worker.invoke(
            (event_json, deadline_ms, aws_request_id, trace_header),
            wait_s=min(self.function.timeout_s, integration_timeout_s),
        )
        self._pool.release(worker, reusable=kind in ("ok", "error"))
        if kind == "timeout":
            _log(f"{aws_request_id} Task timed out after {time.time() - started:.2f} seconds")
        elif kind == "crash":
            _log(f"{aws_request_id} worker exited during the invocation (Runtime.ExitError)")
        return kind, payload


def _result_to_http(kind: str, payload: str | None) -> HttpResponse:
    if kind == "timeout":
        return gateway_error(503, "Service Unavailable")
    if kind != "ok" or payload is None:
        return gateway_error(500, "Internal Server Error")
    if len(payload.encode()) > LAMBDA_PAYLOAD_LIMIT_BYTES:
        _log("response exceeds Lambda's 6 MB payload limit")
        return gateway_error(500, "Internal Server Error")
    try:
        return to_http_response(json.loads(payload))
    except MalformedResponseError as exc:
        _log(f"malformed Lambda proxy response: {exc}")
        return gateway_error(500, "Internal Server Error")


def _log(message: str) -> None:
    print(f"[api-emulator] {message}", file=sys.stderr, flush=True)


def _raise_keyboard_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def start_emulator(**options: Any) -> ApiEmulator:
    """Build and start an emulator (options as for `ApiEmulator`); returns once it listens (``emu.url``)."""
    return ApiEmulator(**options).start()


def serve_forever(emulator: ApiEmulator) -> None:
    """Block until Ctrl-C or SIGTERM, then stop the emulator."""
    emulator.serve_forever()
