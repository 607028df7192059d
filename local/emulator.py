"""A local API Gateway HTTP API (payload format 2.0) in front of the real Lambda handler.

``curl`` against the emulator runs exactly what Lambda would run: the HTTP request becomes the v2
event API Gateway would send, the handler gets a LambdaContext with a real deadline, and its result
is turned back into HTTP the way API Gateway does it (payload 2.0 response, or the inferred 200).

Lambda runs one request at a time per execution environment and scales out with more of them, each
with its own module state. The emulator does the same with a pool of worker processes
("containers", each a fresh interpreter as with multiprocessing's ``spawn``): each imports the
handler once and handles one event at a time. Workers start lazily up to ``workers``;
``prestart`` of them (default 1) start before the HTTP server listens, so a handler that cannot be
imported fails ``start_emulator`` loudly and the first request does not pay for process start and
import. A worker that crashes or times out is discarded; the next request that needs one starts a
new one. Workers inherit the emulator's environment, plus the variables Lambda itself sets
(``AWS_LAMBDA_FUNCTION_NAME``, ``AWS_REGION``, ``TZ=:UTC``, ...), plus ``env``; they run with the
code directory as working directory and first on ``sys.path`` (Lambda's ``/var/task``), and write
to the emulator's stdout and stderr.

Answers that come from the gateway itself, not from the handler:

- no route for the method and path: 404 ``{"message":"Not Found"}``
- body over 10 MB: 413 ``{"message":"Request Entity Too Large"}``
- the handler raised, the worker died, the result is not a valid payload 2.0 response, or the
  event or the result is over Lambda's 6 MB invocation payload limit (so a body over ~4.5 MB
  that must be base64-encoded fails too): 500 ``{"message":"Internal Server Error"}``
  (details on stderr)
- the function ran past its Timeout, or past the route's integration timeout (30 s by default):
  503 ``{"message":"Service Unavailable"}``; the worker is killed and replaced lazily

Usage::

    emu = start_emulator(handler="app:lambda_handler", code_dir=Path("functions/reschedule"),
                         template=Path("template.yaml"))
    ...  # emu.url
    emu.stop()

or ``python -m local.emulator --port 3000`` (blocks; Ctrl-C stops it).
"""

from __future__ import annotations

import argparse
import atexit
import base64
import binascii
import contextlib
import decimal
import email.utils
import functools
import importlib
import json
import os
import re
import secrets
import signal
import socket
import string
import subprocess
import sys
import threading
import time
import traceback
import uuid
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from local.lambda_context import ACCOUNT_ID, DEFAULT_REGION, LambdaContext, function_arn
from local.template import load_template

# API Gateway HTTP API payload limit; larger requests never reach the function.
MAX_REQUEST_BODY_BYTES = 10 * 1024 * 1024
# Oversized bodies up to this size are read and discarded before the 413, so clients see it.
MAX_DRAINED_BODY_BYTES = 4 * MAX_REQUEST_BODY_BYTES
# Lambda's synchronous invocation limit, for the event and for the handler's result alike.
LAMBDA_PAYLOAD_LIMIT_BYTES = 6 * 1024 * 1024
# HTTP API integration timeout: the default and the maximum (an HttpApi event's TimeoutInMillis).
INTEGRATION_TIMEOUT_MS = 30_000
# SAM's defaults when neither the function nor Globals set them.
DEFAULT_FUNCTION_TIMEOUT_S = 3
DEFAULT_MEMORY_MB = 128
# Local guard only: how long a new worker may take to import the handler.
WORKER_INIT_TIMEOUT_S = 60.0
# How long a stopping worker gets to exit on its own before it is terminated.
WORKER_EXIT_GRACE_S = 2.0

DEFAULT_HANDLER = "app:lambda_handler"
DEFAULT_CODE_DIR = Path("functions/reschedule")
DEFAULT_TEMPLATE = Path("template.yaml")
DEFAULT_ROUTE_KEY = "$default"

# Bodies API Gateway passes through as text; every other body is base64-encoded, including
# application/x-www-form-urlencoded and multipart/form-data (and a body with no content type).
_TEXT_MEDIA_TYPES = frozenset(
    {"application/json", "application/javascript", "application/ecmascript", "application/xml"}
)
# Connection-level headers API Gateway does not forward to the integration.
_HOP_BY_HOP_HEADERS = frozenset(
    {
        "connection",
        "expect",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_REQUEST_ID_ALPHABET = string.ascii_letters + string.digits


# --------------------------------------------------------------------------------------------
# Events


def new_request_id() -> str:
    """An id shaped like API Gateway's (``JKJaXmPLvHcESHA=``), unique per request."""
    return "".join(secrets.choice(_REQUEST_ID_ALPHABET) for _ in range(15)) + "="


def is_text_media_type(content_type: str | None) -> bool:
    """Whether API Gateway passes a request body of this type as text (else base64)."""
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return (
        media_type.startswith("text/")
        or media_type in _TEXT_MEDIA_TYPES
        or media_type.endswith(("+json", "+xml"))
    )


def _apigw_time(epoch_s: float) -> str:
    t = time.gmtime(epoch_s)
    month = _MONTHS[t.tm_mon - 1]
    return f"{t.tm_mday:02d}/{month}/{t.tm_year}:{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"


def _event_headers(
    headers: Iterable[tuple[str, str]], body: bytes, source_ip: str, now: float
) -> tuple[dict[str, str], list[str]]:
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.strip().lower()
        if key == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
        elif key not in _HOP_BY_HOP_HEADERS:
            merged[key] = f"{merged[key]},{value}" if key in merged else value
    if body and "content-length" not in merged:
        merged["content-length"] = str(len(body))
    forwarded_for = merged.get("x-forwarded-for")
    merged["x-forwarded-for"] = f"{forwarded_for}, {source_ip}" if forwarded_for else source_ip
    merged["x-forwarded-proto"] = "http"
    port = _host_port(merged)
    merged["x-forwarded-port"] = str(port) if port else "80"
    merged.setdefault("x-amzn-trace-id", f"Root=1-{int(now):08x}-{secrets.token_hex(12)}")
    return merged, cookies


def _host_port(headers: Mapping[str, str]) -> int | None:
    try:
        return urlsplit(f"//{headers.get('host', '')}").port
    except ValueError:
        return None


def build_event(
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    source_ip: str = "127.0.0.1",
    route_key: str | None = None,
    path_parameters: Mapping[str, str] | None = None,
    request_id: str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The API Gateway HTTP API payload 2.0 event for one request.

    ``raw_path`` is the path as it arrived (percent-encoded); HTTP APIs put it percent-decoded into
    ``rawPath``, while ``rawQueryString`` stays as sent. Header names are lower-cased and repeats
    joined with commas; Cookie headers move to ``cookies``; API Gateway's forwarding headers are
    added. Text bodies are passed as is, any other body base64-encoded.
    """
    now = time.time() if now is None else now
    request_id = request_id or new_request_id()
    event_headers, cookies = _event_headers(headers, body, source_ip, now)
    decoded_path = unquote(raw_path)
    host = event_headers.get("host", "localhost")
    domain_name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    route_key = route_key or DEFAULT_ROUTE_KEY

    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": decoded_path,
        "rawQueryString": raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = event_headers
    query: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    if query:
        event["queryStringParameters"] = query
    event["requestContext"] = {
        "accountId": ACCOUNT_ID,
        "apiId": "local",
        "domainName": domain_name,
        "domainPrefix": domain_name.split(".", 1)[0],
        "http": {
            "method": method.upper(),
            "path": decoded_path,
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": event_headers.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": route_key,
        "stage": "$default",
        "time": _apigw_time(now),
        "timeEpoch": int(now * 1000),
    }
    is_base64 = False
    if body:
        text: str | None = None
        if is_text_media_type(event_headers.get("content-type")):
            with contextlib.suppress(UnicodeDecodeError):
                text = body.decode("utf-8")
        if text is None:
            text, is_base64 = base64.b64encode(body).decode("ascii"), True
        event["body"] = text
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    event["isBase64Encoded"] = is_base64
    return event


# --------------------------------------------------------------------------------------------
# Responses


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class MalformedResponseError(ValueError):
    """The handler's result is not a payload 2.0 response API Gateway can send."""


def gateway_error(status: int, message: str) -> HttpResponse:
    """An answer API Gateway gives on its own, e.g. ``{"message":"Not Found"}``."""
    body = json.dumps({"message": message}, separators=(",", ":")).encode()
    return HttpResponse(status, [("content-type", "application/json")], body)


def _header_text(name: str, value: Any) -> str:
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str) or "\r" in value or "\n" in value or "\r" in name or "\n" in name:
        raise MalformedResponseError(f"header {name!r} has an invalid value {value!r}")
    return value


def to_http_response(result: Any) -> HttpResponse:
    """Map a handler result to HTTP as API Gateway does for payload format 2.0.

    A dict with ``statusCode`` is a response: ``headers``, ``cookies`` (one Set-Cookie each),
    ``body`` (base64-decoded when ``isBase64Encoded``). Anything else is inferred: 200,
    ``application/json``, the result as the body (a string as is, anything else as JSON).
    """
    if not (isinstance(result, dict) and "statusCode" in result):
        text = result if isinstance(result, str) else json.dumps(result)
        return HttpResponse(200, [("content-type", "application/json")], text.encode())

    status = result["statusCode"]
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
        raise MalformedResponseError(f"statusCode {status!r} is not an HTTP status")

    headers: list[tuple[str, str]] = []
    raw_headers = result.get("headers") or {}
    if not isinstance(raw_headers, dict):
        raise MalformedResponseError("headers is not an object")
    for name, value in raw_headers.items():
        if value is not None:
            headers.append((str(name), _header_text(str(name), value)))
    cookies = result.get("cookies") or []
    if not isinstance(cookies, list):
        raise MalformedResponseError("cookies is not a list")
    headers.extend(("set-cookie", _header_text("set-cookie", cookie)) for cookie in cookies)

    raw_body = result.get("body")
    body: bytes
    if raw_body is None:
        body = b""
    elif not isinstance(raw_body, str):
        raise MalformedResponseError(f"body is a {type(raw_body).__name__}, not a string")
    elif result.get("isBase64Encoded"):
        try:
            body = base64.b64decode(raw_body, validate=True)
        except binascii.Error as exc:
            raise MalformedResponseError("body is flagged isBase64Encoded but is not base64") from exc
    else:
        body = raw_body.encode("utf-8")
    return HttpResponse(status, headers, body)


# --------------------------------------------------------------------------------------------
# Routes and the function, from template.yaml


@dataclass(frozen=True)
class Route:
    """One HttpApi event of the function: ``POST /v1/reschedules`` or ``$default``."""

    method: str  # upper-case, or "ANY"
    path: str | None  # None for the $default route
    integration_timeout_ms: int = INTEGRATION_TIMEOUT_MS

    @property
    def key(self) -> str:
        return DEFAULT_ROUTE_KEY if self.path is None else f"{self.method} {self.path}"

    def match(self, method: str, raw_path: str) -> dict[str, str] | None:
        """Path parameters (percent-decoded) if this route takes the request, else None."""
        if self.method not in ("ANY", method):
            return None
        if self.path is None:
            return {}
        pattern, names = _compile_path(self.path)
        found = pattern.fullmatch(raw_path)
        if found is None:
            return None
        return {name: unquote(value) for name, value in zip(names, found.groups(), strict=True)}

    def specificity(self) -> tuple[int, int, int, int]:
        """Sort key, most specific first: exact paths, then greedy paths, then $default."""
        if self.path is None:
            return (2, 0, 0, 0)
        parts = self.path.split("/")[1:]
        greedy = int(any(part.endswith("+}") for part in parts))
        literals = sum(1 for part in parts if not part.startswith("{"))
        return (greedy, -literals, int(self.method == "ANY"), 0)


@functools.lru_cache(maxsize=256)
def _compile_path(path: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    """``/v1/items/{id}`` -> a pattern over the request's (still percent-encoded) path."""
    parts, names = [], []
    for segment in path.split("/")[1:]:
        if segment.startswith("{") and segment.endswith("+}"):
            names.append(segment[1:-2])
            parts.append("(.+)")
        elif segment.startswith("{") and segment.endswith("}"):
            names.append(segment[1:-1])
            parts.append("([^/]+)")
        else:
            parts.append(re.escape(segment))
    return re.compile("/" + "/".join(parts)), tuple(names)


def match_route(routes: Iterable[Route], method: str, raw_path: str) -> tuple[Route, dict[str, str]] | None:
    """The route API Gateway would choose for a request, with its path parameters."""
    for route in sorted(routes, key=Route.specificity):
        params = route.match(method.upper(), raw_path)
        if params is not None:
            return route, params
    return None


@dataclass(frozen=True)
class FunctionConfig:
    logical_id: str
    function_name: str
    timeout_s: float
    memory_mb: int
    routes: tuple[Route, ...] = field(default_factory=tuple)


def _resolve(value: Any, parameters: Mapping[str, Any]) -> Any:
    """A plain value, following ``{"Ref": Parameter}`` to the parameter's Default."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        parameter = parameters.get(value["Ref"])
        return parameter.get("Default") if isinstance(parameter, dict) else None
    return value


def _handler_matches(sam_handler: Any, handler: str) -> bool:
    if not isinstance(sam_handler, str) or "." not in sam_handler:
        return False
    module, _, function = sam_handler.rpartition(".")
    return f"{module.replace('/', '.')}:{function}" == handler


def _routes(properties: Mapping[str, Any], parameters: Mapping[str, Any]) -> tuple[Route, ...]:
    routes = []
    for event in (properties.get("Events") or {}).values():
        if not isinstance(event, dict) or event.get("Type") != "HttpApi":
            continue
        props = event.get("Properties") or {}
        path = _resolve(props.get("Path"), parameters)
        method = str(_resolve(props.get("Method"), parameters) or "ANY").upper()
        timeout_ms = _resolve(props.get("TimeoutInMillis"), parameters)
        route_timeout = int(timeout_ms) if timeout_ms else INTEGRATION_TIMEOUT_MS
        if path in (None, DEFAULT_ROUTE_KEY):
            routes.append(Route("ANY", None, route_timeout))
        else:
            routes.append(Route("ANY" if method == "*" else method, str(path), route_timeout))
    return tuple(routes)


def read_function_config(template_path: Path, *, handler: str, function: str | None = None) -> FunctionConfig:
    """``function_config`` of the SAM template at ``template_path``."""
    try:
        return function_config(load_template(template_path), handler=handler, function=function)
    except ValueError as exc:
        raise ValueError(f"{template_path}: {exc}") from exc


def function_config(
    template: Mapping[str, Any], *, handler: str, function: str | None = None
) -> FunctionConfig:
    """The function behind ``handler`` in a parsed SAM template: name, Timeout, MemorySize, routes.

    The function is ``function`` (a logical id) if given, else the one whose Handler is
    ``handler`` (``app.lambda_handler`` for ``app:lambda_handler``), else the only function with
    HttpApi events. Timeout and MemorySize fall back to Globals, then to SAM's defaults.
    """
    parameters = template.get("Parameters") or {}
    global_props = (template.get("Globals") or {}).get("Function") or {}
    functions = {
        logical_id: {**global_props, **(resource.get("Properties") or {})}
        for logical_id, resource in template["Resources"].items()
        if isinstance(resource, dict) and resource.get("Type") == "AWS::Serverless::Function"
    }
    if function is None:
        by_handler = [
            lid for lid, props in functions.items() if _handler_matches(props.get("Handler"), handler)
        ]
        with_routes = [lid for lid, props in functions.items() if _routes(props, parameters)]
        candidates = by_handler or with_routes
        if len(candidates) != 1:
            raise ValueError(
                f"cannot tell which function runs {handler!r} "
                f"(candidates: {candidates or list(functions)}); pass function=<logical id>"
            )
        function = candidates[0]
    if function not in functions:
        raise ValueError(f"no AWS::Serverless::Function {function!r}")
    props = functions[function]
    name = _resolve(props.get("FunctionName"), parameters)
    timeout = _resolve(props.get("Timeout"), parameters)
    memory = _resolve(props.get("MemorySize"), parameters)
    return FunctionConfig(
        logical_id=function,
        function_name=name if isinstance(name, str) else function,
        timeout_s=float(timeout) if timeout is not None else DEFAULT_FUNCTION_TIMEOUT_S,
        memory_mb=int(memory) if memory is not None else DEFAULT_MEMORY_MB,
        routes=_routes(props, parameters),
    )


# --------------------------------------------------------------------------------------------
# Worker processes ("containers")


@dataclass(frozen=True)
class _WorkerSpec:
    handler: str
    code_dir: str
    function_name: str
    memory_mb: int
    env: dict[str, str]


def _lambda_json_default(value: Any) -> Any:
    # Lambda's Python runtime serialises Decimal results as numbers.
    if isinstance(value, decimal.Decimal):
        return float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _lambda_environment(spec: _WorkerSpec) -> dict[str, str]:
    """Variables Lambda sets in every execution environment (the function's own come on top)."""
    region = (
        spec.env.get("AWS_REGION") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    )
    region = region or DEFAULT_REGION
    log_stream = f"{time.strftime('%Y/%m/%d', time.gmtime())}/[$LATEST]{uuid.uuid4().hex}"
    return {
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", region),
        "AWS_EXECUTION_ENV": f"AWS_Lambda_python{sys.version_info.major}.{sys.version_info.minor}",
        "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.function_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "TZ": ":UTC",
    }


def _worker_main(conn: Any, spec: _WorkerSpec) -> None:
    """Body of a worker process: import the handler once, then run one event at a time."""
    # The emulator stops its workers itself; a stray Ctrl-C must not kill one mid-request.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    os.environ.update(_lambda_environment(spec))
    os.environ.update(spec.env)
    time.tzset()
    os.chdir(spec.code_dir)
    sys.path.insert(0, spec.code_dir)
    try:
        module_name, function_name = spec.handler.split(":")
        handler = getattr(importlib.import_module(module_name), function_name)
    except Exception:
        traceback.print_exc()
        conn.send(("init_error", None))
        return
    conn.send(("ready", None))

    region = os.environ["AWS_REGION"]
    arn = function_arn(os.environ["AWS_LAMBDA_FUNCTION_NAME"], region)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        event_json, deadline_ms, aws_request_id, trace_header = message
        os.environ["_X_AMZN_TRACE_ID"] = f"{trace_header};Parent={secrets.token_hex(8)};Sampled=0"
        context = LambdaContext(
            aws_request_id=aws_request_id,
            function_name=os.environ["AWS_LAMBDA_FUNCTION_NAME"],
            function_version=os.environ["AWS_LAMBDA_FUNCTION_VERSION"],
            invoked_function_arn=arn,
            memory_limit_in_mb=os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"],
            log_group_name=os.environ["AWS_LAMBDA_LOG_GROUP_NAME"],
            log_stream_name=os.environ["AWS_LAMBDA_LOG_STREAM_NAME"],
            deadline_ms=deadline_ms,
        )
        reply: tuple[str, str | None]
        try:
            result = handler(json.loads(event_json), context)
            reply = ("ok", json.dumps(result, default=_lambda_json_default))
        except Exception:
            print(f"[ERROR] {aws_request_id} unhandled exception in the handler", file=sys.stderr)
            traceback.print_exc()
            reply = ("error", None)
        sys.stdout.flush()
        sys.stderr.flush()
        conn.send(reply)


class WorkerInitError(RuntimeError):
    """A worker could not import the handler (its traceback is on stderr)."""


class _PoolClosedError(RuntimeError):
    pass


class _PoolBusyError(RuntimeError):
    pass


# A fresh interpreter per container, like multiprocessing's "spawn", but started directly: the
# caller's __main__ is never re-run in it (no main guard needed, no pytest imported into Lambda).
_BOOTSTRAP = """\
import sys
from multiprocessing.connection import Connection
conn = Connection(int(sys.argv[1]))
sys.path[:] = conn.recv()
from local.emulator import _WorkerSpec, _worker_main
_worker_main(conn, _WorkerSpec(**conn.recv()))
"""
_live_workers: weakref.WeakSet[_Worker] = weakref.WeakSet()


class _Worker:
    """One container: a Python process running ``_worker_main``, and the connection to it."""

    def __init__(self, spec: _WorkerSpec) -> None:
        parent_socket, child_socket = socket.socketpair()
        with child_socket:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _BOOTSTRAP, str(child_socket.fileno())],
                pass_fds=(child_socket.fileno(),),
                start_new_session=True,  # Ctrl-C goes to the emulator, which stops its workers
            )
        self.conn = Connection(parent_socket.detach())
        _live_workers.add(self)
        with contextlib.suppress(OSError):  # a worker that died at once is reported by wait_ready
            self.conn.send([str(Path(entry).resolve()) for entry in sys.path])
            self.conn.send(asdict(spec))  # plain data: this module may be __main__ here

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout_s: float = WORKER_INIT_TIMEOUT_S) -> None:
        try:
            if not self.conn.poll(timeout_s):
                raise WorkerInitError(f"worker {self.pid} did not import the handler in {timeout_s} s")
            kind, _ = self.conn.recv()
        except (EOFError, OSError) as exc:
            raise WorkerInitError(f"worker {self.pid} exited while importing the handler") from exc
        if kind != "ready":
            raise WorkerInitError(f"worker {self.pid} could not import the handler (traceback above)")

    def invoke(self, message: tuple[Any, ...], wait_s: float) -> tuple[str, str | None]:
        """``("ok", result JSON)``, ``("error", None)``, ``("timeout", None)`` or ``("crash", None)``."""
        try:
            self.conn.send(message)
            if not self.conn.poll(max(wait_s, 0.0)):
                return "timeout", None
            kind, payload = self.conn.recv()
        except (EOFError, OSError):
            return "crash", None
        return kind, payload

    def ask_to_exit(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(None)

    def terminate(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.terminate()

    def finish(self, grace_s: float) -> None:
        """Wait for the process to end, terminate then kill it if it does not; reap it."""
        try:
            self.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.terminate()
            try:
                self.process.wait(1.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        with contextlib.suppress(OSError):
            self.conn.close()
        _live_workers.discard(self)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self.finish(grace_s=1.0)


@atexit.register
def _kill_leftover_workers() -> None:
    for worker in list(_live_workers):
        worker.kill()


class _WorkerPool:
    """Up to ``size`` workers; a request takes an idle one, or starts one, or waits."""

    def __init__(self, spec: _WorkerSpec, size: int) -> None:
        if size < 1:
            raise ValueError("workers must be at least 1")
        self._spec = spec
        self._size = size
        self._idle: list[_Worker] = []  # most recently used last: warm workers are reused first
        self._all: set[_Worker] = set()
        self._slots_used = 0
        self._closed = False
        self._cond = threading.Condition()

    def pids(self) -> list[int]:
        with self._cond:
            return sorted(w.pid for w in self._all)

    def prestart(self, count: int) -> None:
        with self._cond:
            count = max(0, min(count, self._size - self._slots_used))
            self._slots_used += count
        workers: list[_Worker] = []
        try:
            for started in range(count):
                try:
                    workers.append(self._spawn())
                except BaseException:
                    with self._cond:
                        self._slots_used -= count - started - 1  # the slots never used
                    raise
            for worker in workers:
                worker.wait_ready()
        except BaseException:
            for worker in workers:
                self._discard(worker)
            raise
        with self._cond:
            self._idle.extend(workers)
            self._cond.notify_all()

    def _spawn(self) -> _Worker:
        try:
            worker = _Worker(self._spec)
        except BaseException:
            with self._cond:
                self._slots_used -= 1
                self._cond.notify()
            raise
        with self._cond:
            closed = self._closed
            if not closed:
                self._all.add(worker)
        if closed:
            worker.kill()
            with self._cond:
                self._slots_used -= 1
            raise _PoolClosedError
        return worker

    def _discard(self, worker: _Worker, *, graceful: bool = False) -> None:
        with self._cond:
            if worker not in self._all:
                return
            self._all.discard(worker)
            self._slots_used -= 1
            self._cond.notify()
        if graceful:
            worker.ask_to_exit()
            worker.finish(WORKER_EXIT_GRACE_S)
        else:
            worker.kill()

    def acquire(self, wait_s: float) -> _Worker:
        deadline = time.monotonic() + wait_s
        with self._cond:
            while True:
                if self._closed:
                    raise _PoolClosedError
                if self._idle:
                    return self._idle.pop()
                if self._slots_used < self._size:
                    self._slots_used += 1
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _PoolBusyError
                self._cond.wait(remaining)
        worker = self._spawn()
        try:
            worker.wait_ready()
        except BaseException:
            self._discard(worker)
            raise
        return worker

    def release(self, worker: _Worker, *, reusable: bool) -> None:
        with self._cond:
            if reusable and not self._closed and worker in self._all:
                self._idle.append(worker)
                self._cond.notify()
                return
        self._discard(worker, graceful=reusable)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, workers = list(self._idle), list(self._all)
            self._idle.clear()
            self._all.clear()
            self._cond.notify_all()
        for worker in workers:
            if worker in idle:
                worker.ask_to_exit()
            else:
                worker.terminate()
        for worker in workers:
            worker.finish(WORKER_EXIT_GRACE_S)


# --------------------------------------------------------------------------------------------
# HTTP server


class _BadRequestError(ValueError):
    pass


class _TooLargeError(ValueError):
    pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], emulator: ApiEmulator) -> None:
        self.emulator = emulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _RequestHandler)

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
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def handle_expect_100(self) -> bool:
        # Refuse an oversized body before the client sends it.
        length = self.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > MAX_REQUEST_BODY_BYTES:
            self._send(gateway_error(413, "Request Entity Too Large"), new_request_id(), close=True)
            return False
        return super().handle_expect_100()

    def _handle(self) -> None:
        request_id = new_request_id()
        try:
            body = self._read_body()
        except _TooLargeError:
            self._send(gateway_error(413, "Request Entity Too Large"), request_id, close=True)
            return
        except _BadRequestError:
            self._send(gateway_error(400, "Bad Request"), request_id, close=True)
            return
        response = self.server.emulator.dispatch(
            method=self.command,
            target=self.path,
            headers=self.headers.items(),
            body=body,
            source_ip=self.client_address[0],
            request_id=request_id,
        )
        self._send(response, request_id)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            return b""
        if not length_header.strip().isdigit():
            raise _BadRequestError
        length = int(length_header)
        if length > MAX_REQUEST_BODY_BYTES:
            if length <= MAX_DRAINED_BODY_BYTES:
                # Read it anyway, so that the client, still sending, gets to read the 413.
                while length > 0 and (chunk := self.rfile.read(min(1 << 20, length))):
                    length -= len(chunk)
            raise _TooLargeError
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            try:
                size = int(self.rfile.readline(65537).split(b";", 1)[0].strip(), 16)
            except ValueError as exc:
                raise _BadRequestError from exc
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            total += size
            if total > MAX_REQUEST_BODY_BYTES:
                raise _TooLargeError
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _send(self, response: HttpResponse, request_id: str, *, close: bool = False) -> None:
        self.send_response_only(response.status)
        names = set()
        for name, value in response.headers:
            lower = name.lower()
            if lower in ("content-length", "connection", "transfer-encoding", "apigw-requestid"):
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

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.emulator.access_log:
            super().log_message(format, *args)


# --------------------------------------------------------------------------------------------
# The emulator


class ApiEmulator:
    """API Gateway HTTP API + Lambda, locally (see the module docstring).

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
        host: str = "127.0.0.1",
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
        spec = _WorkerSpec(
            handler=handler,
            code_dir=str(Path(code_dir).resolve()),
            function_name=self.function.function_name,
            memory_mb=self.function.memory_mb,
            env={str(name): str(value) for name, value in (env or {}).items()},
        )
        self._pool = _WorkerPool(spec, workers)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()

    # lifecycle

    def start(self) -> ApiEmulator:
        """Pre-start workers, then listen; returns once the server accepts connections."""
        try:
            self._pool.prestart(self._prestart)
            self._server = _Server((self.host, self._requested_port), self)
        except BaseException:
            self._pool.close()
            raise
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="api-emulator", daemon=True
        )
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        return int(self._server.server_address[1])

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
            self._server.shutdown()
            self._server.server_close()
            self._server.close_connections()
        self._pool.close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def serve_forever(self) -> None:
        """Block until ``stop()`` or Ctrl-C/SIGTERM, then stop."""
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        try:
            while not self._stopped.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

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
        source_ip: str = "127.0.0.1",
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
        except (_PoolClosedError, _PoolBusyError):
            return gateway_error(503, "Service Unavailable")
        except WorkerInitError as exc:
            _log(str(exc))
            return gateway_error(500, "Internal Server Error")
        return _result_to_http(kind, payload)

    def _run(
        self, event_json: str, event: dict[str, Any], integration_timeout_s: float
    ) -> tuple[str, str | None]:
        """One invocation on an idle worker: ``(kind, result JSON)``, see ``_Worker.invoke``."""
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


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def start_emulator(**options: Any) -> ApiEmulator:
    """Build and start an emulator (options as for `ApiEmulator`); returns once it listens (``emu.url``)."""
    return ApiEmulator(**options).start()


def serve_forever(emulator: ApiEmulator) -> None:
    """Block until Ctrl-C or SIGTERM, then stop the emulator."""
    emulator.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--handler", default=DEFAULT_HANDLER, help="module:function")
    parser.add_argument("--code-dir", type=Path, default=DEFAULT_CODE_DIR)
    parser.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE)
    parser.add_argument("--function", help="logical id of the function (default: found by handler)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=4)
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
