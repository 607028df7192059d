"""Routes and the function's settings, read from the SAM template, and API Gateway's route choice."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from local.emulator.events import DEFAULT_ROUTE_KEY
from local.template import load_template

# HTTP API integration timeout: the default and the maximum (an HttpApi event's TimeoutInMillis).
INTEGRATION_TIMEOUT_MS = 30_000
# SAM's defaults when neither the function nor Globals set them.
DEFAULT_FUNCTION_TIMEOUT_S = 3
DEFAULT_MEMORY_MB = 128
# The methods an HTTP API route can name (ANY stands for all of them). A request with any other
# method (TRACE, CONNECT, FOO) matches no route, ANY and $default included: 404 from the gateway.
ROUTABLE_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


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
        if method not in ROUTABLE_METHODS or self.method not in ("ANY", method):
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
