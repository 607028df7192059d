"""The HTTP door's routing: an HTTP API (payload format 2.0) event in, a proxy result out.

Powertools' `APIGatewayHttpResolver` did this before. Importing it costs about 60 ms of every cold
start, measured on the deployed artifacts (docs/performance.md): its package loads every resolver
Powertools has (AppSync with asyncio, Bedrock, ALB, VPC Lattice, ...) and every event class, 98
modules in all. The relay has five routes. This module routes them the way the resolver did:

- the same path rules (`<name>` is one path segment of the resolver's characters, the whole path
  must match, the method must match, first route wins, anything else is "not found");
- the same answer shape (`statusCode`, `body`, `isBase64Encoded`, `headers`, `cookies`);
- the request's `headers` lower-cased (HTTP API sends them lower-cased already).

The OpenAPI document is still Powertools' own: `tools/openapi.py` registers these routes, with the
`openapi` metadata each one carries, on a Powertools resolver at build time, so this module and the
document cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

# One path segment, as Powertools' resolver matches a `<name>` in a rule (its `_SAFE_URI`).
_SEGMENT = r"[-._~()'!*:@,;=+&$%<> \[\]{}|^a-zA-Z0-9]+"
_PARAMETER = re.compile(r"<(\w+)>")


@dataclass
class Response:
    """One answer. `content_type` becomes the Content-Type header unless `headers` sets one."""

    status_code: int
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None

    def __post_init__(self) -> None:
        if self.content_type:
            self.headers.setdefault("Content-Type", self.content_type)

    def proxy_result(self) -> dict[str, Any]:
        return {
            "statusCode": self.status_code,
            "body": self.body,
            "isBase64Encoded": False,
            "headers": dict(self.headers),
            "cookies": [],
        }


class Request:
    """The parts of an HTTP API event the door reads."""

    __slots__ = ("body", "event", "headers", "is_base64", "lambda_context", "method", "path")

    def __init__(self, event: Mapping[str, Any], lambda_context: LambdaContext) -> None:
        http = (event.get("requestContext") or {}).get("http") or {}
        self.event = event
        self.method: str = str(http.get("method", "")).upper()
        self.path: str = str(event.get("rawPath") or http.get("path") or "/")
        self.headers: dict[str, str] = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
        self.body: str = event.get("body") or ""
        self.is_base64 = bool(event.get("isBase64Encoded"))
        self.lambda_context = lambda_context

    @property
    def request_id(self) -> str | None:
        request_id = (self.event.get("requestContext") or {}).get("requestId")
        return None if request_id is None else str(request_id)

    def query(self, name: str) -> str | None:
        value = (self.event.get("queryStringParameters") or {}).get(name)
        return None if value is None else str(value)


Handler = Callable[..., Response]


@dataclass(frozen=True)
class Route:
    method: str
    rule: str  # as Powertools writes it: /v1/reschedules/<reschedule_id>
    handler: Handler
    pattern: re.Pattern[str]
    openapi: Mapping[str, Any]  # summary, responses, operation_id, include_in_schema: for tools/openapi.py


def compile_rule(rule: str) -> re.Pattern[str]:
    return re.compile("^" + _PARAMETER.sub(rf"(?P<\1>{_SEGMENT})", rule) + "$")


State = TypeVar("State")


class Router(Generic[State]):
    """Routes, the request being handled (`current`), and its per-request `state`: one typed object
    the door defines, made new for each request by `new_state` and dropped after it."""

    def __init__(self, new_state: Callable[[], State]) -> None:
        self.routes: list[Route] = []
        self._current: Request | None = None
        self._new_state = new_state
        self._state: State | None = None

    def route(self, rule: str, method: str, **openapi: Any) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes.append(Route(method.upper(), rule, handler, compile_rule(rule), openapi))
            return handler

        return register

    def get(self, rule: str, **openapi: Any) -> Callable[[Handler], Handler]:
        return self.route(rule, "GET", **openapi)

    def post(self, rule: str, **openapi: Any) -> Callable[[Handler], Handler]:
        return self.route(rule, "POST", **openapi)

    def delete(self, rule: str, **openapi: Any) -> Callable[[Handler], Handler]:
        return self.route(rule, "DELETE", **openapi)

    @property
    def current(self) -> Request:
        if self._current is None:
            raise RuntimeError("no request is being handled")
        return self._current

    @property
    def state(self) -> State:
        if self._state is None:
            raise RuntimeError("no request is being handled")
        return self._state

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            if route.method != method:
                continue
            found = route.pattern.match(path)
            if found is not None:
                return route, found.groupdict()
        return None

    def resolve(
        self,
        event: Mapping[str, Any],
        lambda_context: LambdaContext,
        *,
        unrouted: Callable[[], Response],
        on_error: Callable[[Exception], Response],
    ) -> dict[str, Any]:
        """Run the matching route (`unrouted` if none); an exception it raises is `on_error`'s to answer."""
        request = Request(event, lambda_context)
        self._current, self._state = request, self._new_state()
        try:
            matched = self.match(request.method, request.path)
            try:
                response = unrouted() if matched is None else matched[0].handler(**matched[1])
            except Exception as error:  # noqa: BLE001 - every failure is answered; on_error tells which
                response = on_error(error)
            return response.proxy_result()
        finally:
            self._current, self._state = None, None
