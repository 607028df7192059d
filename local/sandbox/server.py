"""HTTP machinery shared by the provider sandboxes: keep-alive server, call log, faults, stats.

Everything under `/_sandbox/` is the control surface for tests and humans; every other request is a
provider-API request, logged, counted, and then, in this order: failed by a running outage, failed
by a pending fault, refused by a per-key rate limit, or answered by the provider module.
"""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import sys
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from local.sandbox.acuity import AcuityApi
from local.sandbox.api import ApiRequest, ApiResponse, BodyError, ProviderApi, decode_json
from local.sandbox.calcom import CalcomApi
from local.sandbox.faults import FaultSpecError, FaultSwitch, parse_fault
from local.sandbox.iclosed import IclosedApi
from local.sandbox.limits import Admission, LimitSpecError, RateLimiter, Refusal, parse_limit
from local.sandbox.novacal import NovacalApi
from local.sandbox.outage import OutageSpecError, OutageSwitch, parse_outage
from local.sandbox.persistence import read_state, write_state

_APIS: dict[str, Callable[[str], ProviderApi]] = {
    "iclosed": IclosedApi,
    "novacal": NovacalApi,
    "calcom": CalcomApi,
    "acuity": AcuityApi,
}
PROVIDERS = tuple(_APIS)
# Acuity's "token" is its HTTP Basic credential, `<user id>:<api key>`.
DEFAULT_TOKENS = {
    "iclosed": "iclosed-sandbox-token-0001",
    "novacal": "novacal-sandbox-token-0001",
    "calcom": "cal_sandbox_key_0001",
    "acuity": "10001:sandbox-acuity-key-0001",
}

CONTROL_PREFIX = "/_sandbox/"
# Largest request body read; bigger ones get 413 and the connection is closed.
MAX_BODY_BYTES = 1024 * 1024
# Oldest entries are dropped beyond this, so a long-running local stack does not grow forever.
MAX_LOGGED_CALLS = 10_000
# Idle keep-alive connections are closed after this, like a real load balancer would.
KEEP_ALIVE_IDLE_SECONDS = 120
# How often the accept loop checks for stop(); bounds how long stop() takes.
STOP_POLL_SECONDS = 0.05


class _BodyTooLarge(Exception):
    pass


class _BadFraming(Exception):
    pass


class SandboxState:
    """Call log, request and connection counters, guarded by one lock."""

    def __init__(self, rate_limit_block_seconds: int | None = None) -> None:
        self.lock = threading.Lock()
        self.faults = FaultSwitch()
        self.outage = OutageSwitch()
        self.limits = RateLimiter(block_seconds=rate_limit_block_seconds)
        # Paths of moves committing slowly (a `commit_delay_ms` fault): a racing move of the same
        # booking gets the provider's conflict answer, when it has one (Cal.com's 409).
        self.committing: set[str] = set()
        self._calls: deque[dict[str, Any]] = deque(maxlen=MAX_LOGGED_CALLS)
        self._requests = 0
        self._connections = 0  # connections that carried provider-API requests since the last reset
        self._accepted = 0  # every TCP connection accepted since the last reset
        self._epoch = 0  # bumped on reset, so connections opened before it count again when reused

    def note_accept(self) -> None:
        with self.lock:
            self._accepted += 1

    def note_api_request(self, call: dict[str, Any], connection_epoch: int | None) -> int:
        """Log one provider-API call; returns the epoch the carrying connection is now counted in."""
        with self.lock:
            self._calls.append(call)
            self._requests += 1
            if connection_epoch != self._epoch:
                self._connections += 1
            return self._epoch

    def calls(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self._calls)

    def clear_calls(self) -> None:
        with self.lock:
            self._calls.clear()

    def stats(self) -> dict[str, int]:
        with self.lock:
            return {"connections": self._connections, "requests": self._requests, "accepted": self._accepted}

    def reset_stats(self) -> None:
        with self.lock:
            self._requests = self._connections = self._accepted = 0
            self._epoch += 1


class SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], api: ProviderApi, *, access_log: bool, state_file: Path | None = None
    ) -> None:
        self.api = api
        # Where the bookings are kept across restarts (None: seeded afresh every start).
        self.state_file = state_file
        self._persist_lock = threading.Lock()
        if state_file is not None and (stored := read_state(state_file)) is not None:
            api.restore(stored)
        self.state = SandboxState(getattr(api, "rate_limit_block_seconds", None))
        self.access_log = access_log
        self._open_lock = threading.Lock()
        self._open: set[socket.socket] = set()
        super().__init__(address, SandboxRequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (getfqdn), which can stall on a bad resolver.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        self.state.note_accept()
        with self._open_lock:
            self._open.add(sock)
        return sock, address

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_open_connections(self) -> None:
        """Hang up idle keep-alive connections, whose handler threads would otherwise keep serving."""
        with self._open_lock:
            open_sockets = list(self._open)
        for sock in open_sockets:
            with contextlib.suppress(OSError):  # the peer may already have gone
                sock.shutdown(socket.SHUT_RDWR)

    def persist(self) -> None:
        """Write the bookings to the state file (after a change the provider committed)."""
        if self.state_file is None:
            return
        with self._persist_lock:
            write_state(self.state_file, self.api.state())

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up mid-request is normal in fault tests; anything else is a real bug.
        if isinstance(sys.exception(), OSError):
            return
        super().handle_error(request, client_address)


class SandboxRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "reschedule-relay-sandbox/1"
    sys_version = ""
    timeout = KEEP_ALIVE_IDLE_SECONDS
    # Headers and body go out in separate writes; Nagle plus delayed ACK would add ~40 ms to each.
    disable_nagle_algorithm = True
    server: SandboxHTTPServer

    def setup(self) -> None:
        super().setup()
        self._counted_epoch: int | None = None

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.access_log:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_OPTIONS(self) -> None:
        self._dispatch()

    # -- request plumbing --------------------------------------------------------------------------

    def _dispatch(self) -> None:
        path = self.path.split("?", 1)[0]
        headers = {name.lower(): value for name, value in self._header_pairs()}
        try:
            body = self._read_body(headers)
        except (_BodyTooLarge, _BadFraming) as exc:
            self.close_connection = True
            status = 413 if isinstance(exc, _BodyTooLarge) else 400
            if not path.startswith(CONTROL_PREFIX):
                self._log_call(headers, b"")
                self._send(self.server.api.error(status, HTTPStatus(status).phrase))
            else:
                self._send(ApiResponse(status, {"error": HTTPStatus(status).phrase}))
            return
        if path.startswith(CONTROL_PREFIX):
            self._send(self._control(path, body))
            return
        self._log_call(headers, body)
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query, keep_blank_values=True)
        self._serve_api(ApiRequest(method=self.command, path=path, headers=headers, body=body, query=query))

    def _header_pairs(self) -> list[tuple[str, str]]:
        pairs: dict[str, list[str]] = {}
        for name, value in self.headers.items():
            pairs.setdefault(name, []).append(value)
        return [(name, ", ".join(values)) for name, values in pairs.items()]

    def _read_body(self, headers: dict[str, str]) -> bytes:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return self._read_chunked()
        length_text = headers.get("content-length")
        if length_text is None:
            return b""
        if not length_text.isdigit():
            raise _BadFraming
        length = int(length_text)
        if length > MAX_BODY_BYTES:
            raise _BodyTooLarge
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        body = bytearray()
        while True:
            size_line = self.rfile.readline(1024).split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError as exc:
                raise _BadFraming from exc
            if size == 0:
                while self.rfile.readline(1024).strip():  # trailers, up to the blank line
                    pass
                return bytes(body)
            if len(body) + size > MAX_BODY_BYTES:
                raise _BodyTooLarge
            body += self.rfile.read(size)
            self.rfile.readline(1024)  # CRLF after the chunk data

    def _log_call(self, headers: dict[str, str], body: bytes) -> None:
        logged_body: Any = None
        if body:
            try:
                logged_body = decode_json(body)
            except BodyError:
                logged_body = body.decode("utf-8", errors="replace")
        # The raw request target, query string included, so a stray query is visible in tests.
        call = {"method": self.command, "path": self.path, "headers": headers, "body": logged_body}
        call["at"] = time.time()  # when it arrived (Unix seconds): pacing tests count calls per window
        self._counted_epoch = self.server.state.note_api_request(call, self._counted_epoch)

    def _serve_api(self, request: ApiRequest) -> None:
        api = self.server.api
        state = self.server.state
        outage = state.outage.take()
        if outage is not None:
            self._send(api.fault(outage.status, outage.retry_after))
            return
        fault = state.faults.take() if request.method != "GET" else None  # faults hit moves, not reads
        if fault is not None:
            if fault.delay_ms:
                time.sleep(fault.delay_ms / 1000)
            if fault.drop_connection and not fault.after_commit:
                self._drop_connection()
                return
            if fault.status is not None:
                self._send(api.fault(fault.status, fault.retry_after))
                return
        admission = state.limits.admit(api.rate_limit_key(request))
        if isinstance(admission, Refusal):
            self._send(api.rate_limited(admission.per_minute, admission.retry_after, admission.reset_at))
            return
        response = self._handle(request, fault.commit_delay_ms if fault is not None else 0)
        if request.method != "GET" and response.status < HTTPStatus.MULTIPLE_CHOICES:
            self.server.persist()
        if fault is not None and fault.after_commit:
            self._drop_connection()  # the change is applied; the answer never leaves
            return
        if isinstance(admission, Admission):
            headers = getattr(api, "rate_limit_headers", None)
            if headers is not None:
                extra = headers(admission.per_minute, admission.remaining, admission.reset_in)
                response = ApiResponse(response.status, response.body, response.headers + extra)
        self._send(response)

    def _handle(self, request: ApiRequest, commit_delay_ms: int) -> ApiResponse:
        """The provider's answer; a slow commit holds the booking's path while it sleeps, so a racing
        move of the same booking meets the provider's conflict answer (if it has one)."""
        api = self.server.api
        state = self.server.state
        conflict = getattr(api, "conflict", None)
        if request.method != "GET" and conflict is not None:
            with state.lock:
                racing = request.path in state.committing
                if not racing and commit_delay_ms:
                    state.committing.add(request.path)
            if racing:
                answer: ApiResponse = conflict()
                return answer
        if not commit_delay_ms:
            return api.handle(request)
        try:
            time.sleep(commit_delay_ms / 1000)
            return api.handle(request)
        finally:
            with state.lock:
                state.committing.discard(request.path)

    def _drop_connection(self) -> None:
        """Hang up without a single response byte, as a crashed upstream would."""
        self.close_connection = True
        with contextlib.suppress(OSError):  # the client may already have hung up
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(self, response: ApiResponse) -> None:
        payload = b"" if response.body is None else json.dumps(response.body).encode()
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        if response.status != HTTPStatus.NO_CONTENT:
            if response.body is not None:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and payload:
            self.wfile.write(payload)
        self.wfile.flush()

    # -- control surface ---------------------------------------------------------------------------

    def _control(self, path: str, body: bytes) -> ApiResponse:
        state = self.server.state
        routes: dict[tuple[str, str], Callable[[], ApiResponse]] = {
            ("GET", "/_sandbox/calls"): lambda: ApiResponse(200, state.calls()),
            ("DELETE", "/_sandbox/calls"): lambda: _no_content(state.clear_calls),
            ("POST", "/_sandbox/faults"): lambda: self._arm_fault(body),
            ("GET", "/_sandbox/faults"): lambda: ApiResponse(200, state.faults.describe()),
            ("DELETE", "/_sandbox/faults"): lambda: _no_content(state.faults.clear),
            ("GET", "/_sandbox/stats"): lambda: ApiResponse(200, state.stats()),
            ("DELETE", "/_sandbox/stats"): lambda: _no_content(state.reset_stats),
            ("GET", "/_sandbox/bookings"): lambda: ApiResponse(200, self.server.api.bookings_snapshot()),
            ("POST", "/_sandbox/outage"): lambda: self._start_outage(body),
            ("GET", "/_sandbox/outage"): lambda: ApiResponse(200, state.outage.describe()),
            ("DELETE", "/_sandbox/outage"): lambda: _no_content(state.outage.end),
            ("POST", "/_sandbox/limits"): lambda: self._set_limit(body),
            ("GET", "/_sandbox/limits"): lambda: ApiResponse(200, state.limits.describe()),
            ("DELETE", "/_sandbox/limits"): lambda: _no_content(state.limits.clear),
        }
        route = routes.get((self.command, path.removesuffix("/")))
        if route is None:
            return ApiResponse(404, {"error": f"no sandbox control route {self.command} {path}"})
        return route()

    def _arm_fault(self, body: bytes) -> ApiResponse:
        try:
            fault = parse_fault(decode_json(body) if body else {})
        except (BodyError, FaultSpecError) as exc:
            return ApiResponse(400, {"error": f"invalid fault: {exc}"})
        self.server.state.faults.arm(fault)
        return ApiResponse(204)

    def _start_outage(self, body: bytes) -> ApiResponse:
        try:
            outage = parse_outage(decode_json(body) if body else {})
        except (BodyError, OutageSpecError) as exc:
            return ApiResponse(400, {"error": f"invalid outage: {exc}"})
        self.server.state.outage.start(outage)
        return ApiResponse(204)

    def _set_limit(self, body: bytes) -> ApiResponse:
        try:
            limit = parse_limit(decode_json(body) if body else {})
        except (BodyError, LimitSpecError) as exc:
            return ApiResponse(400, {"error": f"invalid limit: {exc}"})
        self.server.state.limits.set(limit)
        return ApiResponse(204)


def _no_content(action: Callable[[], None]) -> ApiResponse:
    action()
    return ApiResponse(204)


class SandboxProvider:
    """A running sandbox: where it listens, what it accepts, what it holds; `stop()` ends it."""

    def __init__(self, name: str, token: str, server: SandboxHTTPServer, thread: threading.Thread) -> None:
        self.name = name
        self.token = token
        self.url = f"http://{server.server_name}:{server.server_port}"
        self.bookings: list[str] = server.api.booking_ids()
        self._server = server
        self._thread = thread
        self._stop_lock = threading.Lock()
        self._stopped = False

    def allow_token(self, token: str) -> None:
        """Accept another account's key too (providers whose sandbox supports it: NovaCal)."""
        self._server.api.allow_token(token)  # type: ignore[attr-defined]

    def stop(self) -> None:
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
            self._server.shutdown()
            self._server.server_close()
            self._server.close_open_connections()
            self._thread.join()

    def __enter__(self) -> SandboxProvider:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"SandboxProvider(name={self.name!r}, url={self.url!r})"


def start_sandbox(
    name: str,
    token: str | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    access_log: bool = False,
    state_file: Path | None = None,
) -> SandboxProvider:
    """Start a provider sandbox in a background thread; returns once it is listening.

    `state_file`: keep the bookings there across restarts (restored now, written after each change).
    """
    if name not in PROVIDERS:
        raise ValueError(f"unknown sandbox provider {name!r}; expected one of {', '.join(PROVIDERS)}")
    token = DEFAULT_TOKENS[name] if token is None else token
    if not token:
        raise ValueError("a sandbox needs a non-empty bearer token")
    api = _APIS[name](token)
    server = SandboxHTTPServer((host, port), api, access_log=access_log, state_file=state_file)
    thread = threading.Thread(
        target=server.serve_forever, args=(STOP_POLL_SECONDS,), name=f"sandbox-{name}", daemon=True
    )
    thread.start()
    return SandboxProvider(name, token, server, thread)
