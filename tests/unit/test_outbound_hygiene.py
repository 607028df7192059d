"""Where the relay sends: callback destinations, provider base URLs, and what X-Ray records of a callback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from pydantic import ValidationError

from local.stack import CODE_DIR
from relay.addresses import parse_host, refusal
from relay.settings import settings_from
from relay.webhooks.destinations import destination_refusal
from relay.webhooks.sender import url_allowed

TABLES = {"IDEMPOTENCY_TABLE_NAME": "idem", "RESCHEDULES_TABLE_NAME": "records"}


def _resolver(*addresses: str):  # type: ignore[no-untyped-def]
    """What a name resolves to, as the system resolver would say it (no DNS in unit tests)."""

    def resolve(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolve


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:192.168.0.1", "private"),
        ("2002:c0a8:0001::1", "private"),  # 6to4 carrying 192.168.0.1
        ("64:ff9b::a00:1", "private"),  # NAT64 carrying 10.0.0.1
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),  # the instance metadata address
        ("fe80::1", "link-local"),
        ("::ffff:169.254.169.254", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.254", "carrier-grade NAT"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 - an address under test, nothing binds it
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("192.0.2.1", "private"),  # documentation range
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
        ("::ffff:8.8.8.8", None),
    ],
)
def test_addresses_the_relay_may_not_send_to_are_named(address: str, kind: str | None) -> None:
    parsed = parse_host(address)
    assert parsed is not None
    assert refusal(parsed, allow_loopback=False) == kind


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hooks",
        "https://[::1]/hooks",
        "https://[::ffff:127.0.0.1]/hooks",
        "https://[::ffff:a00:1]/hooks",  # ::ffff:10.0.0.1 written in hex
        "https://10.0.0.1/hooks",
        "https://169.254.169.254/latest/meta-data/",
        "https://100.64.1.1/hooks",
        "https://[fe80::1]/hooks",
        "https://0.0.0.0/hooks",
        "https://224.0.0.251/hooks",
        "https://user:pass@hooks.example.test/x",
        "http://hooks.example.test/x",
        "ftp://hooks.example.test/x",
        "https:///no-host",
        "https://hooks.example.test:99999/x",
    ],
)
def test_callback_urls_to_internal_addresses_or_of_the_wrong_form_are_refused(url: str) -> None:
    assert destination_refusal(url, allow_loopback=False, resolve=_resolver("93.184.215.14")) is not None


def test_a_name_is_judged_by_every_address_it_resolves_to() -> None:
    public = _resolver("93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c")
    assert destination_refusal("https://hooks.example.test/x", allow_loopback=False, resolve=public) is None
    # One internal address among public ones is enough to refuse (DNS answers can rotate).
    mixed = _resolver("93.184.215.14", "::ffff:10.0.0.7")
    refused = destination_refusal("https://hooks.example.test/x", allow_loopback=False, resolve=mixed)
    assert refused == "the host resolves to a private address"
    metadata = _resolver("169.254.169.254")
    assert "link-local" in str(
        destination_refusal("https://a.example.test/", allow_loopback=False, resolve=metadata)
    )


def test_loopback_is_allowed_only_by_the_setting_and_nothing_else_with_it() -> None:
    sink = "http://127.0.0.1:9000/hooks/form-demo"
    assert destination_refusal(sink, allow_loopback=False) is not None
    assert destination_refusal(sink, allow_loopback=True) is None
    assert (
        destination_refusal("http://localhost:9000/h", allow_loopback=True, resolve=_resolver("127.0.0.1"))
        is None
    )
    # A name that resolves to loopback is loopback: allowed only with the setting.
    local = _resolver("127.0.0.1")
    assert destination_refusal("https://sink.example.test/h", allow_loopback=False, resolve=local) is not None
    # The setting allows loopback, not the private network.
    assert destination_refusal("http://10.0.0.1/h", allow_loopback=True) is not None
    assert destination_refusal("https://10.0.0.1/h", allow_loopback=True) is not None


def test_a_name_that_does_not_resolve_is_refused_at_write_and_retried_at_send() -> None:
    def nowhere(host: str, port: int) -> list[str]:
        raise OSError("no such name")

    url = "https://hooks.example.test/x"
    assert destination_refusal(url, allow_loopback=False, resolve=nowhere) == "the host does not resolve"
    assert destination_refusal(url, allow_loopback=False, resolve=nowhere, refuse_unresolved=False) is None


def test_the_sender_checks_the_addresses_again_before_it_posts() -> None:
    # Literal addresses need no resolver: the check the worker makes before each POST.
    assert url_allowed("https://[::ffff:10.0.0.1]/hooks", allow_http_loopback=False) is False
    assert url_allowed("https://169.254.169.254/", allow_http_loopback=True) is False
    assert url_allowed("https://100.100.100.100/", allow_http_loopback=False) is False
    assert url_allowed("http://127.0.0.1:9/hooks", allow_http_loopback=True) is True


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("https://public.api.iclosed.io", True),
        ("http://127.0.0.1:8001", True),
        ("http://localhost:8001", True),
        ("http://[::1]:8001", True),
        ("http://public.api.iclosed.io", False),
        ("http://10.0.0.5:8001", False),
    ],
)
def test_provider_base_urls_are_https_unless_loopback(url: str, accepted: bool) -> None:
    environ = TABLES | {"ICLOSED_BASE_URL": url}
    if accepted:
        assert str(settings_from(environ).iclosed_base_url).startswith(url)
    else:
        with pytest.raises(ValidationError, match="https"):
            settings_from(environ)


# Active tracing with httpx patched, as a door sets it up; a UDP socket stands in for the X-Ray daemon.
_XRAY_PROBE = """
import json, socket, sys, threading
from http.server import BaseHTTPRequestHandler, HTTPServer

daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
daemon.bind(("127.0.0.1", int(sys.argv[1])))
daemon.settimeout(0.5)

class Sink(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(204); self.end_headers()
    do_GET = do_POST
    def log_message(self, *args): pass

server = HTTPServer(("127.0.0.1", 0), Sink)
threading.Thread(target=server.serve_forever, daemon=True).start()
base = f"http://127.0.0.1:{server.server_port}"

from relay.tracing import door_tracer
tracer = door_tracer(patch_modules=["httpx"])
import httpx
from relay.webhooks.sender import CallbackTarget, WebhookSender

@tracer.capture_lambda_handler(capture_response=False)
def handler(event, context):
    httpx.Client().get(base + "/provider-path-control")  # an ordinary client: recorded with its URL
    target = CallbackTarget(url=base + "/hooks/sandbox-secret-hook-path", keys=(b"k" * 32,), fingerprint="f")
    return WebhookSender(5.0).post(target, webhook_id="msg_1", timestamp=1, body=b"{}").status

status = handler({}, None)
sent = []
try:
    while True:
        sent.append(daemon.recv(65536).decode())
except socket.timeout:
    pass
print(json.dumps({"status": status, "sent": "\\n".join(sent)}))
"""


def test_xray_never_records_a_callback_urls_path() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "AWS_XRAY", "_X_AMZN"))
    }
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", _XRAY_PROBE, str(port)],
        env={
            **environ,
            "PYTHONPATH": str(CODE_DIR),
            "LAMBDA_TASK_ROOT": str(CODE_DIR),
            "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{port}",
            "_X_AMZN_TRACE_ID": "Root=1-00000000-000000000000000000000001;Parent=0000000000000001;Sampled=1",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == 204  # the callback was sent
    assert "provider-path-control" in result["sent"]  # the tracer records URLs: the check below can fail
    assert "sandbox-secret-hook-path" not in result["sent"]
