"""The small HTTP server base of the local stack's own servers (API emulator, form page; the sandbox
providers can adopt it): threaded, loopback by default, prompt to stop, quiet unless asked.

- `LocalHTTPServer`: a `ThreadingHTTPServer` that binds without a DNS lookup, keeps track of open
  connections so `stop()` also ends idle keep-alive ones, ignores clients that hang up, and runs
  in a background thread (`start_in_thread()`, `url`, `stop()`).
- `LocalRequestHandler`: HTTP/1.1, an access log only when the server has `access_log`, and the
  helpers every handler here needs: `read_body()` (Content-Length or chunked, bounded),
  `read_json()`, `send_body()`, `send_json()`.
"""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import sys
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

# Every local server listens on loopback unless told otherwise: nothing here is for other machines.
LOOPBACK_HOST = "127.0.0.1"
# How often the accept loop checks for stop(); bounds how long stop() takes.
STOP_POLL_SECONDS = 0.1
# How long stop() waits for the serving thread to end.
THREAD_JOIN_TIMEOUT_SECONDS = 5.0
# Longest chunk-size or trailer line read from a chunked body (a hex size plus extensions).
MAX_CHUNK_LINE_BYTES = 65537
# Read size while discarding an oversized body.
DRAIN_READ_BYTES = 1 << 20


class BodyTooLargeError(ValueError):
    """The request body is over the handler's limit (answer 413 and close the connection)."""


class BadFramingError(ValueError):
    """Content-Length or the chunked encoding is not valid (answer 400 and close the connection)."""


class LocalHTTPServer(ThreadingHTTPServer):
    """A threaded HTTP server for the local stack; `handler_class` should be a `LocalRequestHandler`."""

    daemon_threads = True
    request_queue_size = 128
    # Errors of a client that went away mid-request: normal, not worth a traceback.
    quiet_errors: ClassVar[tuple[type[BaseException], ...]] = (ConnectionError, TimeoutError)

    def __init__(
        self,
        address: tuple[str, int],
        handler_class: type[BaseHTTPRequestHandler],
        *,
        access_log: bool = False,
    ) -> None:
        self.access_log = access_log
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, handler_class)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (getfqdn), which can stall on a bad resolver.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.server_name}]" if ":" in self.server_name else self.server_name
        return f"http://{host}:{self.port}"

    def start_in_thread(self, name: str, poll_interval: float = STOP_POLL_SECONDS) -> threading.Thread:
        """Serve in a daemon thread named `name`; the socket already listens, so this returns at once."""
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": poll_interval}, name=name, daemon=True
        )
        self._thread.start()
        return self._thread

    def stop(self) -> None:
        """Stop accepting, close the socket, hang up open connections, wait for the thread."""
        if self._thread is not None:
            self.shutdown()
        self.server_close()
        self.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=THREAD_JOIN_TIMEOUT_SECONDS)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Unblock handler threads waiting on kept-alive connections."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # the peer may already have gone
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], self.quiet_errors):
            return
        super().handle_error(request, client_address)


class LocalRequestHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler with bounded body reading and JSON helpers."""

    protocol_version = "HTTP/1.1"
    server: LocalHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.access_log:
            super().log_message(format, *args)

    # reading

    def read_body(self, limit: int, *, drain_up_to: int = 0) -> bytes:
        """The request body, by Content-Length or chunked; none without either.

        Over `limit`: `BodyTooLargeError`, after reading and discarding a body of up to
        `drain_up_to` bytes so that a client still sending gets to read the answer.
        Invalid framing: `BadFramingError`.
        """
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked(limit)
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            return b""
        if not length_header.strip().isdigit():
            raise BadFramingError
        length = int(length_header)
        if length > limit:
            if length <= drain_up_to:
                while length > 0 and (chunk := self.rfile.read(min(DRAIN_READ_BYTES, length))):
                    length -= len(chunk)
            raise BodyTooLargeError
        return self.rfile.read(length)

    def _read_chunked(self, limit: int) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            try:
                size = int(self.rfile.readline(MAX_CHUNK_LINE_BYTES).split(b";", 1)[0].strip(), 16)
            except ValueError as exc:
                raise BadFramingError from exc
            if size == 0:
                while self.rfile.readline(MAX_CHUNK_LINE_BYTES) not in (b"\r\n", b"\n", b""):
                    pass  # trailers, up to the blank line
                return b"".join(chunks)
            total += size
            if total > limit:
                raise BodyTooLargeError
            chunks.append(self.rfile.read(size))
            self.rfile.readline(MAX_CHUNK_LINE_BYTES)  # CRLF after the chunk data

    def read_json(self, limit: int) -> Any:
        """The body parsed as JSON (None when empty); `BadFramingError` when it is not JSON."""
        body = self.read_body(limit)
        if not body:
            return None
        try:
            return json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadFramingError("the body is not JSON") from exc

    # writing

    def send_body(
        self,
        status: int,
        body: bytes,
        content_type: str | None,
        headers: Iterable[tuple[str, str]] = (),
        *,
        close: bool = False,
    ) -> None:
        """One complete response; HEAD, 204 and 304 get the headers without the body."""
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        for name, value in headers:
            self.send_header(name, value)
        if status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(body)

    def send_json(
        self, status: int, value: Any, headers: Iterable[tuple[str, str]] = (), *, close: bool = False
    ) -> None:
        """`value` as a compact JSON body."""
        body = json.dumps(value, separators=(",", ":")).encode()
        self.send_body(status, body, "application/json", headers, close=close)
