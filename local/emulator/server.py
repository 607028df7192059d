"""The emulator's HTTP side: reads a request, hands it to the gateway, writes its answer back.

Every method reaches the gateway, known or not (``TRACE``, ``FOO``), and every error the HTTP
machinery itself answers (a malformed request line, an oversized header) is JSON like
``{"message":"Bad Request"}``: API Gateway never sends an HTML error page.
"""

from __future__ import annotations

import email.utils
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Protocol

from local.emulator.events import new_request_id
from local.emulator.responses import HttpResponse, gateway_error
from local.httpserver import BadFramingError, BodyTooLargeError, LocalHTTPServer, LocalRequestHandler

# API Gateway HTTP API payload limit; larger requests never reach the function.
MAX_REQUEST_BODY_BYTES = 10 * 1024 * 1024
# Oversized bodies up to this size are read and discarded before the 413, so clients see it.
MAX_DRAINED_BODY_BYTES = 4 * MAX_REQUEST_BODY_BYTES
# Headers the emulator sets itself, whatever the function's response says.
_GATEWAY_HEADERS = frozenset({"content-length", "connection", "transfer-encoding", "apigw-requestid"})


class Gateway(Protocol):
    """What the HTTP side needs from the emulator: one request in, one answer out."""

    def dispatch(
        self,
        *,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        source_ip: str,
        request_id: str,
    ) -> HttpResponse: ...


class EmulatorHTTPServer(LocalHTTPServer):
    def __init__(self, address: tuple[str, int], gateway: Gateway, *, access_log: bool) -> None:
        self.gateway = gateway
        super().__init__(address, _RequestHandler, access_log=access_log)


class _RequestHandler(LocalRequestHandler):
    server: EmulatorHTTPServer

    def __getattr__(self, name: str) -> Callable[[], None]:
        # http.server looks up do_<METHOD>; every method goes to the gateway, which routes it.
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def handle_expect_100(self) -> bool:
        # Refuse an oversized body before the client sends it.
        length = self.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > MAX_REQUEST_BODY_BYTES:
            self._send(gateway_error(413, "Request Entity Too Large"), new_request_id(), close=True)
            return False
        return super().handle_expect_100()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The HTTP machinery's own errors (bad request line, headers too long) as API Gateway's JSON."""
        # http.server takes an unparsable request line for HTTP/0.9 (no status line): answer in 1.1.
        self.request_version = self.protocol_version
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "Error"
        self._send(gateway_error(code, phrase), new_request_id(), close=True)

    def _handle(self) -> None:
        request_id = new_request_id()
        try:
            body = self.read_body(MAX_REQUEST_BODY_BYTES, drain_up_to=MAX_DRAINED_BODY_BYTES)
        except BodyTooLargeError:
            self._send(gateway_error(413, "Request Entity Too Large"), request_id, close=True)
            return
        except BadFramingError:
            self._send(gateway_error(400, "Bad Request"), request_id, close=True)
            return
        response = self.server.gateway.dispatch(
            method=self.command,
            target=self.path,
            headers=self.headers.items(),
            body=body,
            source_ip=self.client_address[0],
            request_id=request_id,
        )
        self._send(response, request_id)

    def _send(self, response: HttpResponse, request_id: str, *, close: bool = False) -> None:
        # send_response_only: API Gateway sends no Server header; Date is added below when missing.
        self.send_response_only(response.status)
        names = set()
        for name, value in response.headers:
            lower = name.lower()
            if lower in _GATEWAY_HEADERS:
                continue
            names.add(lower)
            self.send_header(name, value)
        if "date" not in names:
            self.send_header("Date", email.utils.formatdate(usegmt=True))
        if response.status not in (204, 304):
            self.send_header("Content-Length", str(len(response.body)))
        self.send_header("apigw-requestid", request_id)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD" and response.status not in (204, 304):
            self.wfile.write(response.body)
        self.log_request(response.status, len(response.body))
