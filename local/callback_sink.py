"""The callback sink: a small server of the local stack that records every POST it receives, so
you can watch the relay's outcome callbacks arrive (and make the endpoint fail, to watch retries).

- `POST /hooks/<anything>`: recorded; answered `204`, or with the armed fault's status.
- `GET /_sink/deliveries`: JSON list, oldest first, of `{"path", "headers", "body", "status",
  "received_at"}`; `body` is the request body exactly as received (a string), `status` what the
  sink answered. `DELETE` clears it.
- `POST /_sink/faults {"status": 503, "times": 2}`: answer the next `times` POSTs with `status`
  (`410` makes the relay switch the source's callback off). `DELETE` disarms.
- `POST /hooks/drip/<anything>`: a receiver that never finishes answering: recorded (status
  `"drip"`), then its status line is sent one byte every DRIP_INTERVAL_SECONDS until the sender
  hangs up (or DRIP_MAX_SECONDS); `ended_at` records when the sender hung up. A sender with only
  per-read timeouts would wait for it for minutes.

Holds no secret: verifying signatures is the receiver's job (tests use the reference library).
Runs in a background thread.
"""

from __future__ import annotations

import json
import select
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from local.httpserver import (
    LOOPBACK_HOST,
    BadFramingError,
    BodyTooLargeError,
    LocalHTTPServer,
    LocalRequestHandler,
)

DELIVERIES_PATH = "/_sink/deliveries"
FAULTS_PATH = "/_sink/faults"
HOOKS_PREFIX = "/hooks/"
# Far above any outcome event (one public record); a bigger body is refused with 413.
MAX_BODY_BYTES = 256 * 1024
# An oversized body up to this size is read and dropped, so its sender still gets the 413.
MAX_DRAINED_BYTES = 4 * MAX_BODY_BYTES
# The sink keeps this many deliveries, dropping the oldest.
MAX_KEPT = 10_000
DELIVERED_STATUS = 204
DRIP_PREFIX = "/hooks/drip/"
DRIP_STATUS = "drip"
# One byte this often: far inside any per-read timeout.
DRIP_INTERVAL_SECONDS = 1.0
# A dripping answer gives up after this long (the sink's threads must end some day).
DRIP_MAX_SECONDS = 300.0
DRIPPED_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


@dataclass
class CallbackSink:
    server: LocalHTTPServer
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    fault_status: int = 0
    fault_times: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def deliveries_url(self) -> str:
        return f"{self.server.url}{DELIVERIES_PATH}"

    def hook_url(self, source: str) -> str:
        """The callback URL the demo source `source` is seeded with."""
        return f"{self.server.url}{HOOKS_PREFIX}{source}"

    def stop(self) -> None:
        self.server.stop()

    def record_drip(self, path: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
        """Record a POST to a dripping hook; the caller sets `ended_at` when the sender hangs up."""
        delivery: dict[str, Any] = {
            "path": path,
            "headers": headers,
            "body": body.decode("utf-8", errors="replace"),
            "status": DRIP_STATUS,
            "received_at": time.time(),
            "ended_at": None,
        }
        with self.lock:
            self.deliveries.append(delivery)
            del self.deliveries[:-MAX_KEPT]
        return delivery

    def receive(self, path: str, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            status = DELIVERED_STATUS
            if self.fault_times > 0:
                self.fault_times -= 1
                status = self.fault_status
            self.deliveries.append(
                {
                    "path": path,
                    "headers": headers,
                    "body": body.decode("utf-8", errors="replace"),
                    "status": status,
                    "received_at": time.time(),
                }
            )
            del self.deliveries[:-MAX_KEPT]
        return status


class _Handler(LocalRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        if self.path != DELIVERIES_PATH:
            self.send_json(404, {"error": "not found"})
            return
        with self.server.sink.lock:
            listed = list(self.server.sink.deliveries)
        self.send_json(200, listed)

    def do_DELETE(self) -> None:
        sink = self.server.sink
        with sink.lock:
            if self.path == DELIVERIES_PATH:
                sink.deliveries.clear()
            elif self.path == FAULTS_PATH:
                sink.fault_status, sink.fault_times = 0, 0
            else:
                self.send_json(404, {"error": "not found"})
                return
        self.send_body(204, b"", None)

    def do_POST(self) -> None:
        try:
            body = self.read_body(MAX_BODY_BYTES, drain_up_to=MAX_DRAINED_BYTES)
        except BodyTooLargeError:
            self.send_json(413, {"error": "body too large"}, close=True)
            return
        except BadFramingError:
            self.send_json(400, {"error": "bad framing"}, close=True)
            return
        if self.path == FAULTS_PATH:
            self._arm(body)
            return
        if not self.path.startswith(HOOKS_PREFIX):
            self.send_json(404, {"error": f"POST callbacks to {HOOKS_PREFIX}<name>"})
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        if self.path.startswith(DRIP_PREFIX):
            self._drip(self.server.sink.record_drip(self.path, headers, body))
            return
        self.send_body(self.server.sink.receive(self.path, headers, body), b"", None)

    def _drip(self, delivery: dict[str, Any]) -> None:
        """One byte of the answer per interval, until the sender closes the connection."""
        connection = self.connection
        gives_up = time.monotonic() + DRIP_MAX_SECONDS
        sent = 0
        try:
            while time.monotonic() < gives_up:
                if sent < len(DRIPPED_ANSWER):
                    connection.sendall(DRIPPED_ANSWER[sent : sent + 1])
                    sent += 1
                readable, _, _ = select.select([connection], [], [], DRIP_INTERVAL_SECONDS)
                if readable and not connection.recv(1):  # the sender hung up
                    break
        except OSError:  # reset by the sender
            pass
        with self.server.sink.lock:
            delivery["ended_at"] = time.time()
        self.close_connection = True

    def _arm(self, body: bytes) -> None:
        try:
            fault = json.loads(body or b"{}")
            status, times = int(fault["status"]), int(fault.get("times", 1))
        except (ValueError, KeyError, TypeError):
            self.send_json(400, {"error": 'send {"status": <HTTP status>, "times": <count>}'})
            return
        if not 200 <= status <= 599 or times < 0:
            self.send_json(400, {"error": "status is an HTTP status, times a count"})
            return
        with self.server.sink.lock:
            self.server.sink.fault_status, self.server.sink.fault_times = status, times
        self.send_json(200, {"status": status, "times": times})


class _Server(LocalHTTPServer):
    sink: CallbackSink


def start_callback_sink(*, host: str = LOOPBACK_HOST, port: int = 0) -> CallbackSink:
    """Start the sink in a background thread; returns once it listens."""
    server = _Server((host, port), _Handler)
    sink = CallbackSink(server)
    server.sink = sink
    server.start_in_thread("callback-sink")
    return sink
