"""Per-key rate limits: beyond N calls a minute a key gets its provider's own 429 (a rolling window, or
Cal.com's fixed window with rejected calls counted and a 60 s block)."""

from __future__ import annotations

import httpx
import pytest

from local.sandbox import SandboxProvider
from local.sandbox.limits import RATE_WINDOW_SECONDS, Admission, Limit, RateLimiter, Refusal
from tests.local.sandbox.helpers import (
    HTTP,
    SUCCESS_STATUS,
    assert_provider_error,
    auth,
    control,
    rate_key,
    send_valid,
    valid_call,
)

LIMIT = 3


def limits(provider: SandboxProvider) -> dict[str, object]:
    response = control(provider, "GET", "limits")
    assert response.status_code == 200
    described: dict[str, object] = response.json()
    return described


def send_with(provider: SandboxProvider, authorization: str) -> httpx.Response:
    method, path, body = valid_call(provider)
    headers = auth(provider) | {"Authorization": authorization}
    return HTTP.request(method, f"{provider.url}{path}", json=body, headers=headers)


def assert_rate_limited(provider: SandboxProvider, response: httpx.Response, per_minute: int) -> None:
    """The contract's 429 for this provider, headers included."""
    assert response.status_code == 429
    name = provider.name
    if name == "iclosed":
        retry_after = int(response.headers["retry-after"])
        assert 1 <= retry_after <= RATE_WINDOW_SECONDS
        assert response.headers["ratelimit-limit"] == str(per_minute)
        assert response.headers["ratelimit-remaining"] == "0"
        assert response.headers["ratelimit-reset"] == str(retry_after)
        payload = response.json()
        assert payload["code"] == "RATE_LIMIT_EXCEEDED"
        assert payload["retryAfter"] == retry_after
    elif name == "calcom":
        assert response.headers["x-ratelimit-limit-default"] == str(per_minute)
        assert response.headers["x-ratelimit-remaining-default"] == "0"
        # Seconds remaining of the key's block (Cal.com), never a Unix time; and no Retry-After.
        assert 1 <= int(response.headers["x-ratelimit-reset-default"]) <= RATE_WINDOW_SECONDS
        assert "retry-after" not in response.headers
        error = response.json()["error"]
        assert error["code"] == "ThrottlerException"
        assert error["message"] == "CustomThrottlerGuard - Too many requests. Please try again later."
    elif name == "acuity":
        assert "retry-after" not in response.headers  # Acuity documents none
        assert_provider_error(provider, response, "Too Many Requests")
    else:
        assert 1 <= int(response.headers["retry-after"]) <= RATE_WINDOW_SECONDS
        assert_provider_error(provider, response, "Rate limit exceeded")


def test_a_key_over_its_limit_gets_the_providers_429(sandbox: SandboxProvider) -> None:
    # Given a limit of three a minute on the sandbox's key
    assert control(sandbox, "POST", "limits", token=rate_key(sandbox), per_minute=LIMIT).status_code == 204

    # When five calls arrive at once
    responses = [send_valid(sandbox) for _ in range(LIMIT + 2)]

    # Then three go through and the rest are refused in the contract's shape, and counted
    assert [r.status_code for r in responses[:LIMIT]] == [SUCCESS_STATUS[sandbox.name]] * LIMIT
    for refused in responses[LIMIT:]:
        assert_rate_limited(sandbox, refused, LIMIT)
    described = limits(sandbox)
    assert described["rejected"] == 2
    assert described["per_key"] == {rate_key(sandbox): LIMIT}
    assert described["every_key"] is None


def test_a_limit_on_another_key_leaves_this_one_alone(sandbox: SandboxProvider) -> None:
    assert control(sandbox, "POST", "limits", token="some-other-key", per_minute=1).status_code == 204
    statuses = [send_valid(sandbox).status_code for _ in range(3)]
    assert statuses == [SUCCESS_STATUS[sandbox.name]] * 3
    assert limits(sandbox)["rejected"] == 0


def test_a_limit_without_token_applies_to_every_key_separately(sandbox: SandboxProvider) -> None:
    assert control(sandbox, "POST", "limits", per_minute=1).status_code == 204
    assert send_valid(sandbox).status_code == SUCCESS_STATUS[sandbox.name]
    assert send_valid(sandbox).status_code == 429
    # a different key has its own window: its first call is answered (401 for the wrong key), not 429
    assert send_with(sandbox, "Bearer sandbox-another-key").status_code == 401
    assert limits(sandbox)["every_key"] == 1
    assert limits(sandbox)["rejected"] == 1


def test_delete_clears_limits_and_counts(sandbox: SandboxProvider) -> None:
    assert control(sandbox, "POST", "limits", token=rate_key(sandbox), per_minute=1).status_code == 204
    send_valid(sandbox)
    assert send_valid(sandbox).status_code == 429
    assert control(sandbox, "DELETE", "limits").status_code == 204
    assert send_valid(sandbox).status_code == SUCCESS_STATUS[sandbox.name]
    assert {k: limits(sandbox)[k] for k in ("rejected", "per_key", "every_key")} == {
        "rejected": 0,
        "per_key": {},
        "every_key": None,
    }


def test_acuity_limits_count_by_user_id(acuity: SandboxProvider) -> None:
    user_id = acuity.token.split(":", 1)[0]
    assert control(acuity, "POST", "limits", token=user_id, per_minute=1).status_code == 204
    assert send_valid(acuity).status_code == 200
    assert send_valid(acuity).status_code == 429


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_window_rolls_over_sixty_seconds() -> None:
    # Given a limit of two a minute and two calls at t=0 and t=30
    clock = FakeClock()
    limiter = RateLimiter(clock)
    limiter.set(Limit(token="k", per_minute=2))
    assert isinstance(limiter.admit("k"), Admission)
    clock.now += 30
    assert isinstance(limiter.admit("k"), Admission)

    # Then a third at t=59 is refused, told to come back when the first call leaves the window
    clock.now += 29
    refusal = limiter.admit("k")
    assert isinstance(refusal, Refusal)
    assert refusal.per_minute == 2
    assert refusal.retry_after == 1
    # and at t=60 the first call has left the window, so one more fits, but not two
    clock.now += 1
    assert isinstance(limiter.admit("k"), Admission)
    refusal = limiter.admit("k")
    assert isinstance(refusal, Refusal)
    assert refusal.retry_after == 30  # the t=30 call leaves at t=90
    assert limiter.describe()["rejected"] == 2


def test_refused_calls_do_not_fill_the_window() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    limiter.set(Limit(token=None, per_minute=1))
    assert isinstance(limiter.admit("k"), Admission)
    for _ in range(5):
        clock.now += 10
        assert isinstance(limiter.admit("k"), Refusal)
    clock.now += 10  # t=60: only the admitted call counted, and it has left
    assert isinstance(limiter.admit("k"), Admission)


def test_fixed_window_counts_rejections_and_blocks_the_key_for_sixty_seconds() -> None:
    # Cal.com's throttler: a fixed window from the first call, every call counted, a 60 s block.
    clock = FakeClock()
    limiter = RateLimiter(clock, block_seconds=60)
    limiter.set(Limit(token=None, per_minute=2))
    first = limiter.admit("k")
    assert first == Admission(per_minute=2, remaining=1, reset_in=60)
    clock.now += 50
    assert limiter.admit("k") == Admission(per_minute=2, remaining=0, reset_in=10)
    clock.now += 5  # t=55: over the limit, so blocked until t=115 (past the window's end at t=60)
    refusal = limiter.admit("k")
    assert isinstance(refusal, Refusal)
    assert refusal.retry_after == 60
    clock.now += 10  # t=65: a new window would have room, but the key is blocked
    refusal = limiter.admit("k")
    assert isinstance(refusal, Refusal)
    assert refusal.retry_after == 50
    clock.now += 50  # t=115: the block is over, a fresh window starts
    assert limiter.admit("k") == Admission(per_minute=2, remaining=1, reset_in=60)
    assert limiter.describe()["rejected"] == 2
    assert limiter.describe()["style"] == "fixed_window"


def test_fixed_window_does_not_slide() -> None:
    # Two calls at t=0 and t=59 of a 2/min window, then one at t=60: a new window, admitted.
    clock = FakeClock()
    limiter = RateLimiter(clock, block_seconds=60)
    limiter.set(Limit(token=None, per_minute=2))
    limiter.admit("k")
    clock.now += 59
    assert isinstance(limiter.admit("k"), Admission)
    clock.now += 1
    assert isinstance(limiter.admit("k"), Admission)  # a rolling window would refuse this one


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        "{}",
        '{"per_minute": 0}',
        '{"per_minute": -5}',
        '{"per_minute": 1.5}',
        '{"per_minute": true}',
        '{"per_minute": "60"}',
        '{"per_minute": 60, "token": ""}',
        '{"per_minute": 60, "token": 7}',
        '{"per_minute": 60, "surprise": 1}',
    ],
)
def test_limit_switch_rejects_junk(sandbox: SandboxProvider, content: str) -> None:
    response = HTTP.post(f"{sandbox.url}/_sandbox/limits", content=content)
    assert response.status_code == 400
    assert isinstance(response.json()["error"], str)
    assert {k: limits(sandbox)[k] for k in ("rejected", "per_key", "every_key")} == {
        "rejected": 0,
        "per_key": {},
        "every_key": None,
    }
