"""The callback sender against receivers on loopback sockets: whatever a receiver does, a POST ends
within the timeout in total, and the answer's body is never read."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from relay.webhooks.sender import Answer, CallbackTarget, WebhookSender

TIMEOUT_SECONDS = 1.0
# Thread scheduling and the loop's own overhead on a busy machine.
SLACK_SECONDS = 0.5
DRIP_INTERVAL_SECONDS = 0.2
TARGET_KEYS = (b"sandbox-callback-key-0000000001",)


def _serve(behaviour: Callable[[socket.socket], None]) -> Iterator[str]:
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.recv(65536)  # the request (small: one event)
                with contextlib.suppress(OSError):  # the sender hung up: what a deadline does
                    behaviour(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    stop.set()
    thread.join(timeout=2)
    listener.close()


def _answer(head: bytes) -> Callable[[socket.socket], None]:
    def behaviour(connection: socket.socket) -> None:
        connection.sendall(head)

    return behaviour


def _drip(data: bytes, *, first: bytes = b"", until: float = 30.0) -> Callable[[socket.socket], None]:
    """Send `first` at once, then `data` one byte every DRIP_INTERVAL_SECONDS."""

    def behaviour(connection: socket.socket) -> None:
        connection.sendall(first)
        ends = time.monotonic() + until
        for byte in data:
            if time.monotonic() > ends:
                return
            connection.sendall(bytes([byte]))
            time.sleep(DRIP_INTERVAL_SECONDS)
        time.sleep(until)

    return behaviour


@pytest.fixture
def sender() -> Iterator[WebhookSender]:
    sending = WebhookSender(TIMEOUT_SECONDS)
    yield sending
    sending.close()


def _post(sender: WebhookSender, url: str) -> tuple[Answer, int, str, float]:
    target = CallbackTarget(url=url, keys=TARGET_KEYS, fingerprint="f")
    started = time.monotonic()
    sent = sender.post(target, webhook_id="msg_1", timestamp=int(time.time()), body=b"{}")
    return sent.answer, sent.status, sent.reason, time.monotonic() - started


def test_a_receiver_that_drips_its_status_line_is_cut_off_at_the_total_deadline(
    sender: WebhookSender,
) -> None:
    # Each byte comes well within any per-read timeout; the whole answer never does.
    served = _serve(_drip(b"HTTP/1.1 200 OK\r\n" * 100))
    url = next(served)
    answer, status, reason, took = _post(sender, url)
    assert (answer, status, reason) == (Answer.FAILED, 0, "timeout")
    assert TIMEOUT_SECONDS - 0.05 <= took <= TIMEOUT_SECONDS + SLACK_SECONDS
    next(served, None)


def test_a_receiver_that_never_answers_is_cut_off_at_the_total_deadline(sender: WebhookSender) -> None:
    served = _serve(lambda _connection: time.sleep(30))
    url = next(served)
    answer, _, reason, took = _post(sender, url)
    assert (answer, reason) == (Answer.FAILED, "timeout")
    assert took <= TIMEOUT_SECONDS + SLACK_SECONDS
    next(served, None)


def test_the_status_decides_at_once_and_a_dripping_body_is_never_read(sender: WebhookSender) -> None:
    head = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
    answered = _serve(_answer(head))
    url = next(answered)
    assert _post(sender, url)[:2] == (Answer.DELIVERED, 204)
    next(answered, None)
    # A 200 whose body is long and dripped: the status is enough, the body is not waited for.
    headers = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
    dripping = _serve(_drip(b"x" * 1000, first=headers))
    url = next(dripping)
    answer, status, _, took = _post(sender, url)
    assert (answer, status) == (Answer.DELIVERED, 200)
    assert took < TIMEOUT_SECONDS / 2
    next(dripping, None)


def test_a_410_and_a_500_are_told_apart_and_the_sender_serves_post_after_post(sender: WebhookSender) -> None:
    for status, expected in ((410, Answer.GONE), (500, Answer.FAILED), (200, Answer.DELIVERED)):
        head = f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode()
        served = _serve(_answer(head))
        url = next(served)
        assert _post(sender, url)[:2] == (expected, status)
        next(served, None)
