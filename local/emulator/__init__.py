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

- no route for the method and path, or a method no route can name (``TRACE``): 404
  ``{"message":"Not Found"}``; an HTTP error of the request itself (malformed request line,
  headers too long): its status with ``{"message": <reason>}``, never an HTML page
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

or ``python -m local.emulator --port 3000`` (blocks; Ctrl-C or SIGTERM stops it).

Modules, in the order a request meets them: ``server`` (HTTP in and out), ``gateway``
(``ApiEmulator``: routing, limits, invocation), ``routes`` (routes and function settings from the
template), ``events`` (the payload 2.0 event), ``workers`` (the containers), ``responses`` (the
function's result back to HTTP).
"""

from local.emulator.events import DEFAULT_ROUTE_KEY, build_event, is_text_media_type, new_request_id
from local.emulator.gateway import (
    DEFAULT_CODE_DIR,
    DEFAULT_HANDLER,
    DEFAULT_TEMPLATE,
    LAMBDA_PAYLOAD_LIMIT_BYTES,
    ApiEmulator,
    serve_forever,
    start_emulator,
)
from local.emulator.responses import HttpResponse, MalformedResponseError, gateway_error, to_http_response
from local.emulator.routes import (
    DEFAULT_FUNCTION_TIMEOUT_S,
    DEFAULT_MEMORY_MB,
    INTEGRATION_TIMEOUT_MS,
    ROUTABLE_METHODS,
    FunctionConfig,
    Route,
    function_config,
    match_route,
    read_function_config,
)
from local.emulator.server import MAX_REQUEST_BODY_BYTES
from local.emulator.workers import WorkerInitError

__all__ = [
    "DEFAULT_CODE_DIR",
    "DEFAULT_FUNCTION_TIMEOUT_S",
    "DEFAULT_HANDLER",
    "DEFAULT_MEMORY_MB",
    "DEFAULT_ROUTE_KEY",
    "DEFAULT_TEMPLATE",
    "INTEGRATION_TIMEOUT_MS",
    "LAMBDA_PAYLOAD_LIMIT_BYTES",
    "MAX_REQUEST_BODY_BYTES",
    "ROUTABLE_METHODS",
    "ApiEmulator",
    "FunctionConfig",
    "HttpResponse",
    "MalformedResponseError",
    "Route",
    "WorkerInitError",
    "build_event",
    "function_config",
    "gateway_error",
    "is_text_media_type",
    "match_route",
    "new_request_id",
    "read_function_config",
    "serve_forever",
    "start_emulator",
    "to_http_response",
]
