"""The HTTP door's own router (relay/web/http.py) routes as Powertools' resolver did: the same rules
match the same paths, the answer has the same shape, and each request starts from nothing."""

from __future__ import annotations

from typing import Any

import pytest
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler import Response as PowertoolsResponse

from relay.web.http import Response, Router
from tests.helpers import lambda_context as _local_context

RULES = (
    ("POST", "/v1/reschedules"),
    ("GET", "/v1/reschedules/<reschedule_id>"),
    ("DELETE", "/v1/reschedules/<reschedule_id>"),
    ("GET", "/v1/bookings/<provider>/<booking_id>/reschedules"),
    ("OPTIONS", "/v1/reschedules"),
)
# (method, path): paths that must route, or not, the same way in both.
REQUESTS = (
    ("POST", "/v1/reschedules"),
    ("POST", "/v1/reschedules/"),
    ("PUT", "/v1/reschedules"),
    ("GET", "/v1/reschedules"),
    ("GET", "/v1/reschedules/9f1c0e2a-77b1-4c55-9d3e-2f1f0a7b8c6d"),
    ("GET", "/v1/reschedules/a:b@c,d;e=f+g&h$i%20j'k(l)m*n!o~p"),
    ("GET", "/v1/reschedules/a/b"),
    ("DELETE", "/v1/reschedules/r-1"),
    ("GET", "/v1/bookings/iclosed/1001/reschedules"),
    ("GET", "/v1/bookings/iclosed/reschedules"),
    ("GET", "/v1/bookings/iclosed/10/01/reschedules"),
    ("OPTIONS", "/v1/reschedules"),
    ("GET", "/v1/reschedulesX"),
    ("GET", "/x/v1/reschedules/r-1"),
)


def lambda_context() -> Any:
    """A Lambda-like context (the local stand-in for Powertools' LambdaContext type)."""
    return _local_context()


def _event(method: str, path: str, **extra: Any) -> dict[str, Any]:
    return {
        "version": "2.0",
        "rawPath": path,
        "headers": extra.pop("headers", {}),
        "requestContext": {
            "http": {"method": method, "path": path},
            "requestId": "req-1",
            "stage": "$default",
        },
        **extra,
    }


def _ours(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    router: Router[dict[str, str]] = Router(dict)
    for rule_method, rule in RULES:
        router.route(rule, rule_method)(lambda **_: Response(200))
    found = router.match(method, path)
    return None if found is None else (f"{found[0].method} {found[0].rule}", found[1])


def _powertools(method: str, path: str, context: Any) -> tuple[str, dict[str, str]] | None:
    resolver = APIGatewayHttpResolver()
    seen: list[tuple[str, dict[str, str]]] = []
    for rule_method, rule in RULES:

        def handler(_rule: str = f"{rule_method} {rule}", **params: str) -> PowertoolsResponse[str]:
            seen.append((_rule, params))
            return PowertoolsResponse(status_code=200, body="")

        resolver.route(rule, rule_method)(handler)
    resolver.not_found(lambda _error: PowertoolsResponse(status_code=404, body=""))
    resolver.resolve(_event(method, path), context)
    return seen[0] if seen else None


@pytest.mark.parametrize(("method", "path"), REQUESTS)
def test_a_path_routes_as_in_powertools(method: str, path: str) -> None:
    assert _ours(method, path) == _powertools(method, path, lambda_context())


def test_the_cases_route_and_miss_as_intended() -> None:
    # The parity above would also hold if both routed nothing.
    assert _ours("GET", "/v1/bookings/iclosed/1001/reschedules") == (
        "GET /v1/bookings/<provider>/<booking_id>/reschedules",
        {"provider": "iclosed", "booking_id": "1001"},
    )
    assert _ours("GET", "/v1/reschedules/a/b") is None
    assert _ours("PUT", "/v1/reschedules") is None


def test_an_answer_has_the_http_api_shape() -> None:
    router: Router[dict[str, str]] = Router(dict)

    @router.post("/v1/things/<thing>")
    def create(thing: str) -> Response:
        request = router.current
        assert request.headers["x-mixed-case"] == "yes"
        assert request.query("limit") == "5"
        assert request.request_id == "req-1"
        return Response(201, body=f'{{"thing": "{thing}"}}', content_type="application/json")

    result = router.resolve(
        _event(
            "POST", "/v1/things/t1", headers={"X-Mixed-Case": "yes"}, queryStringParameters={"limit": "5"}
        ),
        lambda_context(),
        unrouted=lambda: Response(404),
        on_error=lambda _error: Response(500),
    )

    assert result == {
        "statusCode": 201,
        "body": '{"thing": "t1"}',
        "isBase64Encoded": False,
        "headers": {"Content-Type": "application/json"},
        "cookies": [],
    }


def test_a_failure_is_answered_and_nothing_outlives_its_request() -> None:
    router: Router[dict[str, str]] = Router(dict)
    errors: list[Exception] = []

    @router.get("/boom")
    def boom() -> Response:
        router.state["caller"] = "zapier-demo"
        raise ValueError("a bug")

    def on_error(error: Exception) -> Response:
        errors.append(error)
        assert router.state == {"caller": "zapier-demo"}  # the handler for the error still sees it
        return Response(500)

    def unrouted() -> Response:
        assert router.state == {}
        return Response(404)

    first = router.resolve(_event("GET", "/boom"), lambda_context(), unrouted=unrouted, on_error=on_error)
    second = router.resolve(_event("GET", "/nowhere"), lambda_context(), unrouted=unrouted, on_error=on_error)

    assert (first["statusCode"], second["statusCode"]) == (500, 404)
    assert [type(error) for error in errors] == [ValueError]
    with pytest.raises(RuntimeError):
        router.current  # noqa: B018 - outside a request there is none
    with pytest.raises(RuntimeError):
        router.state  # noqa: B018 - nor any state
