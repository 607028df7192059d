"""The local servers' HTTP base: bounded JSON bodies in, JSON out, loopback, a stop that hangs up."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from local.httpserver import (
    LOOPBACK_HOST,
    BadFramingError,
    BodyTooLargeError,
    LocalHTTPServer,
    LocalRequestHandler,
)

LIMIT_BYTES = 64
# stop() must not wait for idle keep-alive connections (their threads block reading).
STOP_BUDGET_S = 2.0


class EchoJson(LocalRequestHandler):
    def do_POST(self) -> None:
        try:
            value = self.read_json(LIMIT_BYTES)
        except BodyTooLargeError:
            self.send_json(413, {"error": "too large"}, close=True)
            return
        except BadFramingError:
            self.send_json(400, {"error": "bad body"}, close=True)
            return
        self.send_json(200, {"echo": value}, [("X-Seen", "yes")])


@pytest.fixture
def server() -> Iterator[LocalHTTPServer]:
    running = LocalHTTPServer((LOOPBACK_HOST, 0), EchoJson)
    running.start_in_thread("test-echo")
    yield running
    running.stop()


def test_json_in_json_out(server: LocalHTTPServer) -> None:
    response = httpx.post(f"{server.url}/", json={"a": 1}, timeout=5)

    assert response.status_code == 200
    assert response.json() == {"echo": {"a": 1}}
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-seen"] == "yes"


def test_chunked_body_is_read(server: LocalHTTPServer) -> None:
    response = httpx.post(f"{server.url}/", content=iter([b'{"a":', b" [1, 2]}"]), timeout=5)

    assert response.json() == {"echo": {"a": [1, 2]}}


@pytest.mark.parametrize(
    ("body", "status"), [(b"not json", 400), (b"\xff\xfe", 400), (b"[" + b"1," * LIMIT_BYTES + b"1]", 413)]
)
def test_bad_and_oversized_bodies_are_refused(server: LocalHTTPServer, body: bytes, status: int) -> None:
    response = httpx.post(f"{server.url}/", content=body, timeout=5)

    assert response.status_code == status
    assert response.headers["connection"] == "close"


def test_binds_loopback_and_stop_hangs_up_idle_connections() -> None:
    server = LocalHTTPServer((LOOPBACK_HOST, 0), EchoJson)
    server.start_in_thread("test-echo")
    assert server.url == f"http://127.0.0.1:{server.port}"
    with httpx.Client(base_url=server.url, timeout=5) as client:
        assert client.post("/", json=1).status_code == 200  # the connection stays open (keep-alive)

        started = time.monotonic()
        server.stop()

        assert time.monotonic() - started < STOP_BUDGET_S
        with pytest.raises(httpx.TransportError):
            client.post("/", json=2)
