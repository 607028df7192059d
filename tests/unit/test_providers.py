"""Provider adapters and the answer mapping: exact request bodies, trimmed results, error mapping."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from relay.command import RescheduleCommand
from relay.composition import build_adapters
from relay.deadline import Deadline
from relay.errors import RelayError
from relay.providers.base import BearerKey
from relay.providers.client import ProviderClient, retry_after_seconds
from relay.providers.iclosed import IClosedKey
from relay.settings import Settings

SETTINGS = Settings.model_validate(
    {
        "idempotency_table_name": "idem",
        "reschedules_table_name": "resch",
        "iclosed_base_url": "https://iclosed.invalid",
        "novacal_base_url": "https://novacal.invalid/base/",
    }
)
ADAPTERS = build_adapters(SETTINGS)
START = datetime(2027, 11, 7, 5, 30, tzinfo=UTC)  # 01:30 EDT, the first of two 01:30s that day


def test_iclosed_body_is_local_wall_time_without_offset() -> None:
    cmd = RescheduleCommand(
        provider="iclosed",
        account="default",
        booking_id="1001",
        start=START,
        end=None,
        timezone="America/New_York",
        reason="Client asked",
        notes="n",
        user_id=7,
    )
    request = ADAPTERS["iclosed"].build_request(cmd)
    assert (request.method, request.path) == ("PUT", "/v1/eventCalls/reschedule")
    assert request.json == {
        "id": 1001,
        "dateTime": "2027-11-07T01:30:00",
        "timeZone": "America/New_York",
        "rescheduleReason": "Client asked",
        "notes": "n",
        "userId": 7,
    }


def test_iclosed_body_leaves_out_optional_fields_not_given() -> None:
    cmd = RescheduleCommand(
        provider="iclosed", account="default", booking_id="5", start=START, end=None, timezone="UTC"
    )
    assert ADAPTERS["iclosed"].build_request(cmd).json == {
        "id": 5,
        "dateTime": "2027-11-07T05:30:00",
        "timeZone": "UTC",
    }


def test_novacal_body_is_rfc3339_utc_with_end_and_time_format() -> None:
    cmd = RescheduleCommand(
        provider="novacal",
        account="default",
        booking_id="3f2c1a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f",
        start=START,
        end=START + timedelta(minutes=45),
        timezone="Europe/Berlin",
        time_format=12,
        answers={"notes": "bring slides"},
    )
    request = ADAPTERS["novacal"].build_request(cmd)
    assert (request.method, request.path) == ("PUT", "/v1/events/3f2c1a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f")
    assert request.json == {
        "start": "2027-11-07T05:30:00Z",
        "end": "2027-11-07T06:15:00Z",
        "timezone": "Europe/Berlin",
        "time_format": 12,
        "form_field_answers": {"notes": "bring slides"},
    }


def test_summaries_keep_scheduling_facts_and_drop_personal_data() -> None:
    iclosed = {
        "data": {
            "eventCall": {
                "id": 1,
                "dateTime": "x",
                "inviteeEmail": "sandbox@example.test",
                "inviteeName": "Sam",
                "questions": [{"a": "b"}],
                "duration": 30,
            }
        }
    }
    assert ADAPTERS["iclosed"].summarise(iclosed) == {"id": 1, "dateTime": "x", "duration": 30}
    novacal = {
        "success": True,
        "data": {
            "id": "u",
            "start": "s",
            "end": "e",
            "status": "accepted",
            "booker": {"email": "sandbox@example.test"},
            "guests": ["g@example.test"],
            "form_field_answers": {"email": "sandbox@example.test"},
        },
    }
    assert ADAPTERS["novacal"].summarise(novacal) == {
        "id": "u",
        "start": "s",
        "end": "e",
        "status": "accepted",
    }
    assert ADAPTERS["novacal"].summarise("not json") == {}


def test_provider_field_errors_map_to_canonical_names() -> None:
    iclosed = {
        "message": {"status": 400, "details": {"formErrors": [], "fieldErrors": {"dateTime": ["bad"]}}}
    }
    assert [(p.field, p.message) for p in ADAPTERS["iclosed"].field_errors(iclosed)] == [("start", "bad")]
    novacal = {"success": False, "message": "Validation failed", "details": {"form_field_answers": ["no"]}}
    assert [(p.field, p.message) for p in ADAPTERS["novacal"].field_errors(novacal)] == [("answers", "no")]


class Provider429Then:
    """A scripted provider: answers in turn, recording every request and every sleep."""

    def __init__(self, *answers: tuple[int, Any, dict[str, str] | None]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status, body, headers = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if status == 0:
            raise httpx.ReadTimeout("slow", request=request)
        if status == -1:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(status, json=body, headers=headers)

    def client(self) -> ProviderClient:
        # Full jitter picks the top of its range here, so waits are predictable.
        return ProviderClient(
            SETTINGS,
            ADAPTERS,
            transport=httpx.MockTransport(self),
            sleep=self.sleeps.append,
            jitter=lambda _low, high: high,
        )


CMD = RescheduleCommand(
    provider="iclosed", account="default", booking_id="1", start=START, end=None, timezone="UTC"
)
ADAPTER = ADAPTERS["iclosed"]
TOKEN = IClosedKey.model_validate({"api_key": "sandbox-token"})


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected", "attempts"),
    [
        (404, {"message": "Event call not found"}, None, (404, "booking_not_found", None), 1),
        (
            400,
            {"message": {"details": {"fieldErrors": {"dateTime": ["x"]}}}},
            None,
            (422, "provider_rejected", None),
            1,
        ),
        (422, {"message": "bad"}, None, (422, "provider_rejected", None), 1),
        (401, {"message": "Unauthorized"}, None, (502, "provider_auth_failed", None), 1),
        (403, {}, None, (502, "provider_auth_failed", None), 1),
        (
            429,
            {"code": "RATE_LIMIT_EXCEEDED", "retryAfter": 1},
            {"Retry-After": "1"},
            (429, "provider_rate_limited", 1),
            3,
        ),
        (429, {"code": "RATE_LIMIT_EXCEEDED", "retryAfter": 2}, None, (429, "provider_rate_limited", 2), 3),
        (500, None, None, (502, "provider_error", None), 1),
        (502, None, None, (503, "provider_unavailable", 1), 3),
        (503, None, {"Retry-After": "1"}, (503, "provider_unavailable", 1), 3),
        (504, None, None, (503, "provider_unavailable", 1), 3),
        (409, None, None, (502, "provider_error", None), 1),
        (0, None, None, (504, "provider_timeout", 1), 3),
        (-1, None, None, (503, "provider_unavailable", 1), 3),
    ],
)
def test_provider_answers_map_to_relay_answers(
    status: int, body: Any, headers: Any, expected: tuple[Any, ...], attempts: int
) -> None:
    provider = Provider429Then((status, body, headers))
    with pytest.raises(RelayError) as caught:
        provider.client().send(ADAPTER, ADAPTER.build_request(CMD), TOKEN)
    assert (caught.value.status, caught.value.code, caught.value.retry_after) == expected
    assert len(provider.requests) == attempts
    assert "sandbox-token" not in str(caught.value.problem())


def test_a_retry_that_succeeds_is_a_success() -> None:
    provider = Provider429Then(
        (503, None, None), (-1, None, None), (200, {"data": {"eventCall": {"id": 1}}}, None)
    )
    reply = provider.client().send(ADAPTER, ADAPTER.build_request(CMD), TOKEN)
    assert reply.status == 200
    assert len(provider.requests) == 3
    # Exponential ceilings, full jitter (here: the ceiling itself)
    assert provider.sleeps == [0.2, 0.4]


def test_429_is_never_retried_sooner_than_retry_after() -> None:
    provider = Provider429Then((429, {}, {"Retry-After": "2"}), (200, {}, None))
    provider.client().send(ADAPTER, ADAPTER.build_request(CMD), TOKEN, Deadline.within(10))
    assert provider.sleeps == [2.0]


def test_no_retry_starts_when_the_deadline_would_pass() -> None:
    provider = Provider429Then((503, None, {"Retry-After": "5"}), (200, {}, None))
    with pytest.raises(RelayError) as caught:
        provider.client().send(ADAPTER, ADAPTER.build_request(CMD), TOKEN, Deadline.within(3))
    assert (caught.value.status, caught.value.code, caught.value.retry_after) == (
        503,
        "provider_unavailable",
        5,
    )
    assert len(provider.requests) == 1
    assert provider.sleeps == []


def test_rate_limit_longer_than_the_deadline_is_passed_on() -> None:
    provider = Provider429Then((429, {}, {"Retry-After": "30"}), (200, {}, None))
    with pytest.raises(RelayError) as caught:
        provider.client().send(ADAPTER, ADAPTER.build_request(CMD), TOKEN, Deadline.within(5))
    assert (caught.value.status, caught.value.retry_after) == (429, 30)
    assert len(provider.requests) == 1


def test_base_url_comes_from_settings_and_the_token_is_a_bearer() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"success": True, "data": {"id": "x"}})

    client = ProviderClient(SETTINGS, ADAPTERS, transport=httpx.MockTransport(answer))
    adapter = ADAPTERS["novacal"]
    cmd = CMD.model_copy(
        update={
            "provider": "novacal",
            "booking_id": "3f2c1a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f",
            "end": START + timedelta(minutes=30),
            "time_format": 24,
        }
    )
    reply = client.send(
        adapter, adapter.build_request(cmd), BearerKey.model_validate({"api_key": "sandbox-novacal"})
    )
    assert reply.status == 200
    assert str(seen[0].url) == "https://novacal.invalid/base/v1/events/3f2c1a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f"
    assert seen[0].headers["authorization"] == "Bearer sandbox-novacal"


def test_retry_after_as_http_date() -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    response = httpx.Response(429, headers={"Retry-After": format_datetime(when, usegmt=True)})
    seconds = retry_after_seconds(response.headers, None)
    assert seconds is not None
    assert 28 <= seconds <= 31


def test_iclosed_token_without_prefix_is_warned_about_not_refused() -> None:
    assert IClosedKey.model_validate({"api_key": "iclosed_abc"}).warnings() == []
    assert IClosedKey.model_validate({"api_key": "iclosed-abc"}).warnings() == []
    warning = IClosedKey.model_validate({"api_key": "sandbox-abc"}).warnings()
    assert warning
    assert "sandbox-abc" not in warning[0]


def _verify_mode(client: ProviderClient) -> ssl.VerifyMode:
    return client._client._transport._pool._ssl_context.verify_mode  # type: ignore[attr-defined,no-any-return]


def test_tls_verification_is_on_whenever_a_provider_is_reached_over_https() -> None:
    # The production defaults are HTTPS: certificates are always verified.
    defaults = Settings(idempotency_table_name="idem", reschedules_table_name="resch")
    assert _verify_mode(ProviderClient(defaults, build_adapters(defaults))) == ssl.CERT_REQUIRED
    plain = Settings.model_validate(
        {
            "idempotency_table_name": "idem",
            "reschedules_table_name": "resch",
            "iclosed_base_url": "http://127.0.0.1:1",
            "novacal_base_url": "http://127.0.0.1:2",
            "calcom_base_url": "http://127.0.0.1:3",
            "acuity_base_url": "http://127.0.0.1:4",
        }
    )
    assert (
        _verify_mode(ProviderClient(plain, build_adapters(plain))) == ssl.CERT_NONE
    )  # no TLS in use: nothing to verify
    mixed = plain.model_copy(update={"novacal_base_url": "https://novacal.invalid"})
    assert _verify_mode(ProviderClient(mixed, build_adapters(mixed))) == ssl.CERT_REQUIRED
