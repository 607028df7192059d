"""The API emulator over real HTTP, with worker processes running tests/local/fixtures/echo_handler.py."""

from __future__ import annotations

import base64
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from local.emulator import ApiEmulator, WorkerInitError, read_function_config, start_emulator

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "tests" / "local" / "fixtures"
HANDLER = "echo_handler:handler"
# How long the CLI may take to stop its server and workers after SIGINT.
CLI_STOP_TIMEOUT_S = 20

TEMPLATE = """
Globals:
  Function:
    Timeout: 7
Resources:
  Api:
    Type: AWS::Serverless::HttpApi
  EchoFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: echo-relay
      Handler: echo_handler.handler
      CodeUri: tests/local/fixtures
      MemorySize: 256
      Role: !GetAtt EchoRole.Arn
      Events:
        Create:
          Type: HttpApi
          Properties:
            ApiId: !Ref Api
            Path: /v1/reschedules
            Method: POST
        Read:
          Type: HttpApi
          Properties:
            ApiId: !Ref Api
            Path: /v1/reschedules/{reschedule_id}
            Method: GET
        Preflight:
          Type: HttpApi
          Properties:
            ApiId: !Ref Api
            Path: /v1/reschedules
            Method: OPTIONS
"""


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("emulator") / "template.yaml"
    path.write_text(TEMPLATE, encoding="utf-8")
    return path


def emulator(template: Path, **kwargs: Any) -> ApiEmulator:
    options: dict[str, Any] = {"handler": HANDLER, "code_dir": FIXTURES, "template": template}
    return start_emulator(**(options | {"access_log": False} | kwargs))


@pytest.fixture(scope="module")
def emu(template: Path) -> Iterator[ApiEmulator]:
    running = emulator(template, workers=4, env={"ECHO_SETTING": "from-env-override"})
    yield running
    running.stop()


@pytest.fixture
def client(emu: ApiEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emu.url, timeout=10) as http:
        yield http


def echoed(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    echo: dict[str, Any] = response.json()
    return echo


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_handler_receives_a_v2_event(client: httpx.Client) -> None:
    body = b'{"booking_id": 42}'

    response = client.post(
        "/v1/reschedules?provider=iclosed&tag=a&tag=b",
        content=body,
        headers=[
            ("Content-Type", "application/json"),
            ("Cookie", "a=1; b=2"),
            ("X-Repeated", "one"),
            ("X-Repeated", "two"),
        ],
    )

    echo = echoed(response)
    event = echo["event"]
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /v1/reschedules"
    assert event["rawPath"] == "/v1/reschedules"
    assert event["rawQueryString"] == "provider=iclosed&tag=a&tag=b"
    assert event["queryStringParameters"] == {"provider": "iclosed", "tag": "a,b"}
    assert event["cookies"] == ["a=1", "b=2"]
    assert event["headers"]["x-repeated"] == "one,two"
    assert event["headers"]["content-type"] == "application/json"
    assert event["body"] == body.decode()
    assert event["isBase64Encoded"] is False
    assert "pathParameters" not in event
    context = event["requestContext"]
    assert context["http"]["method"] == "POST"
    assert context["http"]["sourceIp"] == "127.0.0.1"
    assert context["routeKey"] == "POST /v1/reschedules"
    assert response.headers["apigw-requestid"] == context["requestId"]


def test_lambda_context_and_environment(client: httpx.Client) -> None:
    echo = echoed(client.get("/v1/reschedules/abc"))

    assert echo["context"]["function_name"] == "echo-relay"
    assert echo["context"]["function_version"] == "$LATEST"
    assert echo["context"]["memory_limit_in_mb"] == "256"
    assert echo["context"]["invoked_function_arn"].endswith(":123456789012:function:echo-relay")
    assert echo["context"]["log_group_name"] == "/aws/lambda/echo-relay"
    assert "[$LATEST]" in echo["context"]["log_stream_name"]
    assert echo["env"]["AWS_LAMBDA_FUNCTION_NAME"] == "echo-relay"
    assert echo["env"]["ECHO_SETTING"] == "from-env-override"
    assert echo["env"]["TZ"] == ":UTC"
    assert Path(echo["cwd"]) == FIXTURES


def test_remaining_time_starts_near_the_template_timeout(client: httpx.Client) -> None:
    remaining = echoed(client.get("/v1/reschedules/abc"))["remaining_ms"]

    assert 6_000 < remaining <= 7_000


def test_each_request_gets_a_new_request_id(client: httpx.Client) -> None:
    first = echoed(client.get("/v1/reschedules/abc"))
    second = echoed(client.get("/v1/reschedules/abc"))

    assert first["event"]["requestContext"]["requestId"] != second["event"]["requestContext"]["requestId"]
    assert first["context"]["aws_request_id"] != second["context"]["aws_request_id"]


def test_warm_container_keeps_module_state(client: httpx.Client) -> None:
    first = echoed(client.get("/v1/reschedules/abc"))
    second = echoed(client.get("/v1/reschedules/abc"))

    assert second["pid"] == first["pid"] == first["init_pid"]
    assert second["invocations"] == first["invocations"] + 1


def test_path_parameters(client: httpx.Client) -> None:
    event = echoed(client.get("/v1/reschedules/rs%2001"))["event"]

    assert event["routeKey"] == "GET /v1/reschedules/{reschedule_id}"
    assert event["pathParameters"] == {"reschedule_id": "rs 01"}


def test_urlencoded_form_arrives_base64(client: httpx.Client) -> None:
    response = client.post("/v1/reschedules", data={"booking_id": "42", "note": "café au lait"})

    event = echoed(response)["event"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == response.request.content
    assert event["headers"]["content-type"] == "application/x-www-form-urlencoded"


def test_multipart_form_arrives_base64(client: httpx.Client) -> None:
    response = client.post(
        "/v1/reschedules", files={"booking_id": (None, "42"), "start": (None, "2027-01-15")}
    )

    event = echoed(response)["event"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == response.request.read()
    assert event["headers"]["content-type"].startswith("multipart/form-data; boundary=")


def test_chunked_body_is_reassembled(client: httpx.Client) -> None:
    response = client.post(
        "/v1/reschedules",
        content=iter([b'{"booking_id":', b" 42}"]),
        headers={"Content-Type": "application/json"},
    )

    event = echoed(response)["event"]
    assert event["body"] == '{"booking_id": 42}'
    assert event["headers"]["content-length"] == "18"
    assert "transfer-encoding" not in event["headers"]


def test_options_reaches_the_function(client: httpx.Client) -> None:
    event = echoed(client.options("/v1/reschedules", headers={"Origin": "https://example.com"}))["event"]

    assert event["routeKey"] == "OPTIONS /v1/reschedules"


@pytest.mark.parametrize(("method", "path"), [("GET", "/nowhere"), ("DELETE", "/v1/reschedules")])
def test_unknown_route_is_404(client: httpx.Client, method: str, path: str) -> None:
    response = client.request(method, path)

    assert response.status_code == 404
    assert response.json() == {"message": "Not Found"}
    assert response.headers["content-type"] == "application/json"
    assert response.headers["apigw-requestid"]


@pytest.mark.parametrize("method", ["TRACE", "FOO", "PROPFIND"])
def test_unknown_method_is_api_gateways_json_404(client: httpx.Client, method: str) -> None:
    # http.server alone answers these 501 with an HTML page; API Gateway answers JSON.
    response = client.request(method, "/v1/reschedules")

    assert response.status_code == 404
    assert response.json() == {"message": "Not Found"}
    assert response.headers["content-type"] == "application/json"
    assert response.headers["apigw-requestid"]


def test_malformed_request_line_is_answered_in_json(emu: ApiEmulator) -> None:
    with socket.create_connection(("127.0.0.1", emu.port), timeout=10) as sock:
        sock.sendall(b"GET /v1/reschedules HTTP/1.1 extra\r\nHost: x\r\n\r\n")
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk

    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"content-type: application/json" in head.lower()
    assert json.loads(body) == {"message": "Bad Request"}


def test_body_over_10_mb_is_413(client: httpx.Client) -> None:
    response = client.post("/v1/reschedules", content=b"x" * (10 * 1024 * 1024 + 1))

    assert response.status_code == 413
    assert response.json() == {"message": "Request Entity Too Large"}


def test_handler_exception_is_500_and_the_container_survives(client: httpx.Client) -> None:
    before = echoed(client.get("/v1/reschedules/abc"))["pid"]

    response = client.post("/v1/reschedules?raise=1")

    assert response.status_code == 500
    assert response.json() == {"message": "Internal Server Error"}
    assert echoed(client.get("/v1/reschedules/abc"))["pid"] == before


def test_crashed_container_is_500_and_replaced(client: httpx.Client) -> None:
    before = echoed(client.get("/v1/reschedules/abc"))["pid"]

    response = client.post("/v1/reschedules?exit=1")

    assert response.status_code == 500
    assert echoed(client.get("/v1/reschedules/abc"))["pid"] != before
    assert not pid_alive(before)


def test_payload_response_mapping(client: httpx.Client) -> None:
    response = client.post("/v1/reschedules?respond=binary")

    assert response.status_code == 201
    assert response.content == b"\x00\x01binary\xff"
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["x-count"] == "3"
    assert response.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; HttpOnly"]
    assert response.headers["content-length"] == "9"


@pytest.mark.parametrize(
    ("respond", "status", "body"),
    [
        ("plain", 200, b'["not", "a", "response"]'),
        ("text", 200, b"hello from lambda"),
        ("malformed", 500, b'{"message":"Internal Server Error"}'),
        ("empty", 204, b""),
    ],
)
def test_inferred_and_malformed_responses(
    client: httpx.Client, respond: str, status: int, body: bytes
) -> None:
    response = client.post(f"/v1/reschedules?respond={respond}")

    assert response.status_code == status
    assert response.content == body


def test_timeout_is_503_and_the_container_replaced(template: Path) -> None:
    with (
        emulator(template, workers=1, timeout_s=0.3) as emu,
        httpx.Client(base_url=emu.url, timeout=10) as http,
    ):
        before = echoed(http.get("/v1/reschedules/abc"))["pid"]
        assert echoed(http.get("/v1/reschedules/abc"))["remaining_ms"] <= 300

        started = time.monotonic()
        response = http.get("/v1/reschedules/abc?sleep=5")
        elapsed = time.monotonic() - started

        assert response.status_code == 503
        assert response.json() == {"message": "Service Unavailable"}
        assert elapsed < 2
        assert not pid_alive(before)
        assert echoed(http.get("/v1/reschedules/abc"))["pid"] != before


def sleep_in_parallel(emu: ApiEmulator, requests: int, sleep_s: float) -> tuple[list[int], float]:
    """Send ``requests`` slow requests at once; the pids that served them and the wall time."""
    with httpx.Client(base_url=emu.url, timeout=10) as http, ThreadPoolExecutor(requests) as pool:

        def slow(_: int) -> int:
            return int(echoed(http.get(f"/v1/reschedules/abc?sleep={sleep_s}"))["pid"])

        started = time.monotonic()
        pids = list(pool.map(slow, range(requests)))
        return pids, time.monotonic() - started


def test_parallel_requests_run_in_separate_containers(template: Path) -> None:
    requests, sleep_s = 4, 0.5
    with emulator(template, workers=requests, prestart=requests) as emu:
        pids, elapsed = sleep_in_parallel(emu, requests, sleep_s)

    assert len(set(pids)) == requests
    assert elapsed < requests * sleep_s * 0.6


def test_requests_wait_for_a_busy_pool(template: Path) -> None:
    with emulator(template, workers=2, prestart=2) as emu:
        pids, elapsed = sleep_in_parallel(emu, 4, 0.3)

    assert len(set(pids)) == 2
    assert elapsed >= 0.6


def test_stop_leaves_no_worker_behind(template: Path) -> None:
    emu = emulator(template, workers=3, prestart=3)
    url = emu.url
    with httpx.Client(base_url=url, timeout=10) as http:
        echoed(http.get("/v1/reschedules/abc"))  # keep a connection open across stop()
        pids = emu.worker_pids()
        assert len(pids) == 3

        emu.stop()
        emu.stop()

        assert not [pid for pid in pids if pid_alive(pid)]
        assert emu.worker_pids() == []
        with pytest.raises(httpx.TransportError):
            http.get("/v1/reschedules/abc")


def test_cli_stops_on_sigint_even_when_started_with_sigint_ignored(template: Path) -> None:
    # A shell starts background jobs (`make test > log &`) with SIGINT ignored; exec keeps it so.
    command = (
        f"trap '' INT; exec {shlex.quote(sys.executable)} -m local.emulator --port 0 --workers 1 "
        f"--handler {HANDLER} --code-dir {shlex.quote(str(FIXTURES))} --template {shlex.quote(str(template))}"
    )
    process = subprocess.Popen(  # noqa: S603 - a fixed command built from the test's own paths
        ["/bin/sh", "-c", command],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert banner.startswith("API emulator on http://127.0.0.1:"), banner
        url = banner.split()[3]
        assert httpx.get(f"{url}/v1/reschedules/abc", timeout=10).status_code == 200

        process.send_signal(signal.SIGINT)

        assert process.wait(timeout=CLI_STOP_TIMEOUT_S) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_handler_that_cannot_be_imported_fails_start(template: Path) -> None:
    with pytest.raises(WorkerInitError):
        start_emulator(
            handler="no_such_module:handler", code_dir=FIXTURES, template=template, function="EchoFunction"
        )


def test_real_template_routes() -> None:
    real = REPO_ROOT / "template.yaml"
    if not real.exists():
        pytest.skip("template.yaml is not written yet")

    config = read_function_config(real, handler="app:lambda_handler")

    keys = {route.key for route in config.routes}
    assert "POST /v1/reschedules" in keys
    assert "GET /v1/reschedules/{reschedule_id}" in keys
    assert config.timeout_s > 0


def test_event_json_round_trips_through_the_worker(client: httpx.Client) -> None:
    event = echoed(client.post("/v1/reschedules", json={"x": "é"}))["event"]

    assert json.loads(event["body"]) == {"x": "é"}
