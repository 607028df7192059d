"""The API emulator's translation: HTTP request -> HTTP API v2 event, handler result -> HTTP."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
import yaml

from local.emulator import (
    DEFAULT_FUNCTION_TIMEOUT_S,
    MalformedResponseError,
    Route,
    build_event,
    function_config,
    is_text_media_type,
    match_route,
    to_http_response,
)
from local.template import CloudFormationLoader

TEMPLATE = """
Globals:
  Function:
    Timeout: 12
    MemorySize: 512
Parameters:
  GetPath:
    Type: String
    Default: /v1/reschedules/{reschedule_id}
Resources:
  Api:
    Type: AWS::Serverless::HttpApi
  RescheduleFunction:
    Type: AWS::Serverless::Function
    Properties:
      Handler: app.lambda_handler
      Timeout: 25
      Role: !GetAtt Role.Arn
      Environment:
        Variables:
          TABLE: !Ref Table
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
            Path: !Ref GetPath
            Method: get
            TimeoutInMillis: 5000
        Preflight:
          Type: HttpApi
          Properties:
            ApiId: !Ref Api
            Path: /v1/reschedules
            Method: OPTIONS
  OtherFunction:
    Type: AWS::Serverless::Function
    Properties:
      Handler: other.handler
      Events:
        Queue:
          Type: SQS
          Properties:
            Queue: !GetAtt Queue.Arn
"""


def parse(text: str) -> dict[str, Any]:
    template: dict[str, Any] = yaml.load(text, Loader=CloudFormationLoader)  # noqa: S506 - SafeLoader subclass
    return template


def event_for(
    *,
    method: str = "POST",
    path: str = "/v1/reschedules",
    query: str = "",
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    **kwargs: Any,
) -> dict[str, Any]:
    return build_event(
        method=method,
        raw_path=path,
        raw_query=query,
        headers=headers if headers is not None else [("Host", "localhost:3000")],
        body=body,
        **kwargs,
    )


# ---- events


def test_json_body_is_passed_as_text() -> None:
    body = b'{"booking_id": 42, "start": "2027-01-15T10:00:00Z"}'
    event = event_for(
        headers=[("Host", "localhost:3000"), ("Content-Type", "application/json; charset=utf-8")],
        body=body,
        route_key="POST /v1/reschedules",
    )

    assert event["version"] == "2.0"
    assert event["routeKey"] == event["requestContext"]["routeKey"] == "POST /v1/reschedules"
    assert event["body"] == body.decode()
    assert event["isBase64Encoded"] is False
    assert event["headers"]["content-type"] == "application/json; charset=utf-8"
    assert event["headers"]["content-length"] == str(len(body))


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (
            "application/x-www-form-urlencoded",
            b"booking_id=42&start=2027-01-15T10%3A00&note=caf%C3%A9+au+lait",
        ),
        (
            "multipart/form-data; boundary=XyZ",
            b'--XyZ\r\nContent-Disposition: form-data; name="booking_id"\r\n\r\n42\r\n--XyZ--\r\n',
        ),
        ("application/octet-stream", b"\x00\xffraw"),
        (None, b"no content type at all"),
    ],
)
def test_form_and_binary_bodies_are_base64(content_type: str | None, body: bytes) -> None:
    headers = [("Host", "localhost")] + ([("Content-Type", content_type)] if content_type else [])

    event = event_for(headers=headers, body=body)

    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == body


@pytest.mark.parametrize(
    ("content_type", "text"),
    [
        ("application/json", True),
        ("application/problem+json", True),
        ("text/plain; charset=utf-8", True),
        ("text/html", True),
        ("application/xml", True),
        ("application/x-www-form-urlencoded", False),
        ("multipart/form-data; boundary=a", False),
        ("image/png", False),
        (None, False),
    ],
)
def test_text_media_types(content_type: str | None, text: bool) -> None:
    assert is_text_media_type(content_type) is text


def test_text_body_that_is_not_utf8_is_base64() -> None:
    event = event_for(headers=[("Content-Type", "text/plain")], body="é".encode("latin-1"))

    assert event["isBase64Encoded"] is True


def test_empty_body_is_omitted() -> None:
    event = event_for(method="GET")

    assert "body" not in event
    assert event["isBase64Encoded"] is False


def test_query_string_repeats_are_joined_and_raw_string_kept() -> None:
    event = event_for(query="provider=iclosed&tag=a&tag=b%20c&flag")

    assert event["rawQueryString"] == "provider=iclosed&tag=a&tag=b%20c&flag"
    assert event["queryStringParameters"] == {"provider": "iclosed", "tag": "a,b c", "flag": ""}


def test_no_query_string_omits_parameters() -> None:
    event = event_for()

    assert event["rawQueryString"] == ""
    assert "queryStringParameters" not in event


def test_cookies_move_from_headers_to_cookies() -> None:
    event = event_for(headers=[("Host", "h"), ("Cookie", "a=1; b=2"), ("cookie", "c=3")])

    assert event["cookies"] == ["a=1", "b=2", "c=3"]
    assert "cookie" not in event["headers"]


def test_no_cookies_omits_the_field() -> None:
    assert "cookies" not in event_for()


def test_header_names_lowercased_and_repeats_joined() -> None:
    event = event_for(
        headers=[
            ("Host", "localhost:3000"),
            ("X-Custom", "one"),
            ("x-custom", "two"),
            ("User-Agent", "curl/8.5"),
            ("Connection", "keep-alive"),
        ],
    )

    headers = event["headers"]
    assert headers["x-custom"] == "one,two"
    assert headers["user-agent"] == event["requestContext"]["http"]["userAgent"] == "curl/8.5"
    assert "connection" not in headers
    assert all(name == name.lower() for name in headers)


def test_forwarding_headers_added_like_api_gateway() -> None:
    event = event_for(
        headers=[("Host", "localhost:3000"), ("X-Forwarded-For", "203.0.113.9")], source_ip="10.0.0.7"
    )

    headers = event["headers"]
    assert headers["x-forwarded-for"] == "203.0.113.9, 10.0.0.7"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-port"] == "3000"
    assert re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24}", headers["x-amzn-trace-id"])
    assert event["requestContext"]["http"]["sourceIp"] == "10.0.0.7"


def test_request_context() -> None:
    event = event_for(
        method="post", path="/v1/reschedules", request_id="AbCdEfGhIjKlMnO=", now=1_795_303_071.123
    )

    context = event["requestContext"]
    assert context["accountId"] == "123456789012"
    assert context["apiId"] == "local"
    assert context["domainName"] == "localhost"
    assert context["domainPrefix"] == "localhost"
    assert context["http"] == {
        "method": "POST",
        "path": "/v1/reschedules",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "",
    }
    assert context["requestId"] == "AbCdEfGhIjKlMnO="
    assert context["stage"] == "$default"
    assert context["time"] == "21/Nov/2026:23:17:51 +0000"
    assert context["timeEpoch"] == 1_795_303_071_123
    assert event["routeKey"] == "$default"


def test_request_ids_are_unique() -> None:
    ids = {event_for()["requestContext"]["requestId"] for _ in range(50)}

    assert len(ids) == 50


def test_raw_path_is_percent_decoded_as_http_apis_do() -> None:
    event = event_for(method="GET", path="/v1/reschedules/a%20b")

    assert event["rawPath"] == event["requestContext"]["http"]["path"] == "/v1/reschedules/a b"


def test_event_is_json_serialisable() -> None:
    event = event_for(headers=[("Content-Type", "application/json")], body=b"{}")

    assert json.loads(json.dumps(event)) == event


# ---- routes from the template


def test_function_config_from_template() -> None:
    config = function_config(parse(TEMPLATE), handler="app:lambda_handler")

    assert config.logical_id == config.function_name == "RescheduleFunction"
    assert config.timeout_s == 25
    assert config.memory_mb == 512
    assert [route.key for route in config.routes] == [
        "POST /v1/reschedules",
        "GET /v1/reschedules/{reschedule_id}",
        "OPTIONS /v1/reschedules",
    ]
    assert config.routes[1].integration_timeout_ms == 5000


def test_function_config_defaults() -> None:
    template = parse(TEMPLATE.replace("      Timeout: 25\n", "").replace("    Timeout: 12\n", ""))

    config = function_config(template, handler="app:lambda_handler")

    assert config.timeout_s == DEFAULT_FUNCTION_TIMEOUT_S


def test_function_config_needs_a_known_function() -> None:
    with pytest.raises(ValueError, match="NoSuchFunction"):
        function_config(parse(TEMPLATE), handler="app:lambda_handler", function="NoSuchFunction")


def test_path_parameters_from_a_template_route() -> None:
    routes = function_config(parse(TEMPLATE), handler="app:lambda_handler").routes

    matched = match_route(routes, "GET", "/v1/reschedules/rs_01J%2F9")

    assert matched is not None
    route, params = matched
    assert route.key == "GET /v1/reschedules/{reschedule_id}"
    assert params == {"reschedule_id": "rs_01J/9"}
    event = event_for(
        method="GET", path="/v1/reschedules/rs_01J%2F9", route_key=route.key, path_parameters=params
    )
    assert event["pathParameters"] == {"reschedule_id": "rs_01J/9"}
    assert event["routeKey"] == "GET /v1/reschedules/{reschedule_id}"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/unknown"),
        ("DELETE", "/v1/reschedules"),  # known path, no route for the method
        ("GET", "/v1/reschedules"),
        ("GET", "/v1/reschedules/"),  # a path parameter is never empty
        ("GET", "/v1/reschedules/a/b"),  # nor spans segments
        ("POST", "/v1/reschedules/extra"),
    ],
)
def test_unknown_routes_do_not_match(method: str, path: str) -> None:
    routes = function_config(parse(TEMPLATE), handler="app:lambda_handler").routes

    assert match_route(routes, method, path) is None


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "FOO"])
def test_a_method_no_route_can_name_matches_not_even_any_or_default(method: str) -> None:
    routes = (Route("ANY", "/v1/reschedules"), Route("ANY", None))

    assert match_route(routes, method, "/v1/reschedules") is None
    assert match_route(routes, "GET", "/v1/reschedules") is not None


def test_options_is_routed_like_any_method() -> None:
    routes = function_config(parse(TEMPLATE), handler="app:lambda_handler").routes

    matched = match_route(routes, "OPTIONS", "/v1/reschedules")

    assert matched is not None
    assert matched[0].key == "OPTIONS /v1/reschedules"


def test_most_specific_route_wins() -> None:
    routes = [
        Route("ANY", None),
        Route("ANY", "/v1/{proxy+}"),
        Route("GET", "/v1/items/{id}"),
        Route("GET", "/v1/items/special"),
        Route("ANY", "/v1/items/special"),
    ]

    def key(method: str, path: str) -> tuple[str, dict[str, str]]:
        matched = match_route(routes, method, path)
        assert matched is not None
        return matched[0].key, matched[1]

    assert key("GET", "/v1/items/special") == ("GET /v1/items/special", {})
    assert key("POST", "/v1/items/special") == ("ANY /v1/items/special", {})
    assert key("GET", "/v1/items/7") == ("GET /v1/items/{id}", {"id": "7"})
    assert key("PUT", "/v1/a/b/c") == ("ANY /v1/{proxy+}", {"proxy": "a/b/c"})
    assert key("GET", "/elsewhere") == ("$default", {})


# ---- responses


def test_payload_response_with_base64_body_and_cookies() -> None:
    result = {
        "statusCode": 201,
        "headers": {"Content-Type": "image/png", "X-Count": 3, "X-Flag": True},
        "cookies": ["session=abc; HttpOnly; Secure", "theme=dark"],
        "body": base64.b64encode(b"\x89PNG\r\n").decode(),
        "isBase64Encoded": True,
    }

    response = to_http_response(result)

    assert response.status == 201
    assert response.body == b"\x89PNG\r\n"
    assert ("Content-Type", "image/png") in response.headers
    assert ("X-Count", "3") in response.headers
    assert ("X-Flag", "true") in response.headers
    assert [v for n, v in response.headers if n == "set-cookie"] == [
        "session=abc; HttpOnly; Secure",
        "theme=dark",
    ]


def test_payload_response_with_text_body() -> None:
    response = to_http_response(
        {"statusCode": 422, "headers": {"content-type": "application/problem+json"}, "body": "é"}
    )

    assert response.status == 422
    assert response.body == "é".encode()


def test_payload_response_without_body() -> None:
    response = to_http_response({"statusCode": 204})

    assert (response.status, response.body, response.headers) == (204, b"", [])


@pytest.mark.parametrize(
    ("result", "body"),
    [
        ({"message": "hi"}, b'{"message": "hi"}'),
        (["a", 1], b'["a", 1]'),
        ("plain words", b"plain words"),
        (None, b"null"),
    ],
)
def test_results_without_status_code_are_inferred(result: object, body: bytes) -> None:
    response = to_http_response(result)

    assert response.status == 200
    assert response.headers == [("content-type", "application/json")]
    assert response.body == body


@pytest.mark.parametrize(
    "result",
    [
        {"statusCode": "abc"},
        {"statusCode": 99},
        {"statusCode": 200, "body": {"not": "a string"}},
        {"statusCode": 200, "headers": ["x"]},
        {"statusCode": 200, "headers": {"x": {"nested": 1}}},
        {"statusCode": 200, "headers": {"x": "a\r\nInjected: 1"}},
        {"statusCode": 200, "cookies": "a=1"},
        {"statusCode": 200, "body": "***", "isBase64Encoded": True},
    ],
)
def test_malformed_responses_are_rejected(result: object) -> None:
    with pytest.raises(MalformedResponseError):
        to_http_response(result)
