"""Event subscriptions (REST hooks), `GET /v1/me` and `GET /v1/reschedules` against the real local
stack: the API emulator (HTTP door), DynamoDB Local, moto's SQS, the worker under the local event
source, the iClosed sandbox and the stack's callback sink. Events are verified with the Standard
Webhooks reference library.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from local.seed import ZAPIER_APP_DEMO
from local.stack import Stack
from relay.ports import MAX_SUBSCRIPTIONS_PER_SOURCE
from tests.helpers import WEBSITE, ZAPIER, future, new_key

# The demo source with event subscriptions on (the registry's `"subscriptions": true`).
SUBSCRIBER = ZAPIER_APP_DEMO

# The worker polls, sends, and the sink answers: an event arrives within a few seconds.
ARRIVAL_SECONDS = 20
# Long enough for an event that should not come to have come.
QUIET_SECONDS = 6


def _api(stack: Stack) -> str:
    assert stack.api is not None
    return stack.api.url


def _sink(stack: Stack) -> str:
    assert stack.callback_sink is not None
    return stack.callback_sink.url


def _call(
    stack: Stack, method: str, path: str, key: str | None = SUBSCRIBER.api_key, **kwargs: Any
) -> httpx.Response:
    headers = ({"authorization": f"Bearer {key}"} if key else {}) | kwargs.pop("headers", {})
    return httpx.request(method, f"{_api(stack)}{path}", headers=headers, timeout=30, **kwargs)


def _subscribe(
    stack: Stack, url: str, events: list[str] | None = None, key: str = SUBSCRIBER.api_key
) -> dict[str, Any]:
    body: dict[str, Any] = {"url": url} | ({"events": events} if events is not None else {})
    answer = _call(stack, "POST", "/v1/subscriptions", key=key, json=body)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def _hook_path() -> str:
    return f"/hooks/sub-test-{uuid.uuid4().hex[:12]}"


def _deliveries(stack: Stack, path: str) -> list[dict[str, Any]]:
    found = httpx.get(f"{_sink(stack)}/_sink/deliveries").json()
    return [d for d in found if d["path"] == path]


def _wait_for(stack: Stack, path: str, count: int, seconds: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + seconds
    while True:
        found = _deliveries(stack, path)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def _move(stack: Stack, days: int, *, unknown: bool = False) -> httpx.Response:
    """A move of a sandbox booking (succeeds), or of a booking NovaCal does not have (fails, 404)."""
    booking = str(uuid.uuid4()) if unknown else stack.sandboxes["novacal"].bookings[0]
    body = {"provider": "novacal", "booking_id": booking, "start": future(days=days) + "Z"}
    return _call(stack, "POST", "/v1/reschedules", json=body, headers={"idempotency-key": new_key()})


@pytest.fixture
def cleanup(stack: Stack) -> Iterator[list[tuple[str, str]]]:
    """(api key, subscription id) pairs deleted after the test, so no test leaves a subscription behind."""
    created: list[tuple[str, str]] = []
    yield created
    for key, sub_id in created:
        _call(stack, "DELETE", f"/v1/subscriptions/{sub_id}", key=key)
    httpx.delete(f"{_sink(stack)}/_sink/faults").raise_for_status()


def test_me_names_the_source_and_what_it_may_move_and_no_secret(stack: Stack) -> None:
    answer = _call(stack, "GET", "/v1/me", key=ZAPIER.api_key)
    assert answer.status_code == 200, answer.text
    me = answer.json()
    assert me["name"] == ZAPIER.name
    assert me["kind"] == "api_key"
    by_provider = {p["provider"]: p for p in me["providers"]}
    assert set(by_provider) == set(ZAPIER.providers)
    assert by_provider["iclosed"]["accounts"] == ["default"]
    assert by_provider["iclosed"]["display_name"] == "iClosed"
    assert ZAPIER.api_key not in answer.text
    assert "sha256" not in answer.text
    # Another source sees its own, narrower grant.
    website = _call(stack, "GET", "/v1/me", key=WEBSITE.api_key).json()
    assert website["name"] == WEBSITE.name
    assert [p["provider"] for p in website["providers"]] == ["novacal"]


def test_me_without_or_with_a_wrong_key_is_a_401_problem(stack: Stack) -> None:
    for key in (None, "sandbox-key-not-registered-0000"):
        answer = _call(stack, "GET", "/v1/me", key=key)
        assert answer.status_code == 401
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["status"] == 401


def test_a_subscription_secret_is_shown_once_and_only_its_source_sees_or_deletes_it(
    stack: Stack, cleanup: list[tuple[str, str]]
) -> None:
    url = f"{_sink(stack)}{_hook_path()}"
    created = _subscribe(stack, url)
    cleanup.append((SUBSCRIBER.api_key, created["id"]))
    assert created["secret"].startswith("whsec_")
    assert created["events"] == ["reschedule.succeeded", "reschedule.failed"]
    assert created["url"] == url
    listed = _call(stack, "GET", "/v1/subscriptions")
    assert listed.status_code == 200
    mine = [s for s in listed.json()["subscriptions"] if s["id"] == created["id"]]
    assert mine == [{k: v for k, v in created.items() if k != "secret"}]
    assert created["secret"] not in listed.text
    # Another source neither sees nor deletes it.
    theirs = _call(stack, "GET", "/v1/subscriptions", key=WEBSITE.api_key)
    assert created["id"] not in theirs.text
    refused = _call(stack, "DELETE", f"/v1/subscriptions/{created['id']}", key=WEBSITE.api_key)
    assert refused.status_code == 404
    assert refused.json()["code"] == "subscription_not_found"
    assert created["id"] in _call(stack, "GET", "/v1/subscriptions").text
    # Its own source deletes it, once.
    assert _call(stack, "DELETE", f"/v1/subscriptions/{created['id']}").status_code == 204
    assert created["id"] not in _call(stack, "GET", "/v1/subscriptions").text
    assert _call(stack, "DELETE", f"/v1/subscriptions/{created['id']}").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "http://hooks.example.com/zap"}, "url"),
        ({"url": "https://user:pw@hooks.example.com/zap"}, "url"),
        ({"url": "ftp://hooks.example.com/zap"}, "url"),
        ({"url": "https://hooks.example.com/" + "a" * 2000}, "url"),
        ({}, "url"),
        ({"url": "https://hooks.example.com/zap", "events": ["reschedule.moved"]}, "events"),
        ({"url": "https://hooks.example.com/zap", "events": []}, "events"),
        ({"url": "https://hooks.example.com/zap", "target_url": "x"}, "target_url"),
    ],
)
def test_a_bad_subscription_is_a_422_naming_the_field(stack: Stack, body: dict[str, Any], field: str) -> None:
    answer = _call(stack, "POST", "/v1/subscriptions", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert field in [error["field"] for error in answer.json()["errors"]]


def test_a_body_that_is_not_a_json_object_is_a_400(stack: Stack) -> None:
    for content in (b"not json", b"[1, 2]"):
        answer = _call(stack, "POST", "/v1/subscriptions", content=content)
        assert answer.status_code == 400, answer.text
        assert answer.json()["code"] == "malformed_body"


def test_subscriptions_need_an_api_key(stack: Stack) -> None:
    answer = _call(stack, "POST", "/v1/subscriptions", key=None, json={"url": "https://hooks.example.com/z"})
    assert answer.status_code == 401


def test_a_source_has_at_most_the_bound_of_subscriptions(
    stack: Stack, cleanup: list[tuple[str, str]]
) -> None:
    url = "https://hooks.example.com/bound"
    already = len(_call(stack, "GET", "/v1/subscriptions").json()["subscriptions"])
    for _ in range(MAX_SUBSCRIPTIONS_PER_SOURCE - already):
        cleanup.append((SUBSCRIBER.api_key, _subscribe(stack, url)["id"]))
    over = _call(stack, "POST", "/v1/subscriptions", json={"url": url})
    assert over.status_code == 409, over.text
    assert over.json()["code"] == "too_many_subscriptions"
    listed = _call(stack, "GET", "/v1/subscriptions").json()["subscriptions"]
    assert len(listed) == MAX_SUBSCRIPTIONS_PER_SOURCE
    # Deleting one makes room again.
    sub_id = cleanup.pop(0)[1]
    assert _call(stack, "DELETE", f"/v1/subscriptions/{sub_id}").status_code == 204
    cleanup.append((SUBSCRIBER.api_key, _subscribe(stack, url)["id"]))


def test_a_source_with_subscriptions_off_may_not_subscribe(stack: Stack) -> None:
    refused = _call(
        stack, "POST", "/v1/subscriptions", key=ZAPIER.api_key, json={"url": "https://hooks.example.com/z"}
    )
    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["code"] == "subscriptions_not_enabled"
    # It may still list (and delete) what it has: nothing.
    listed = _call(stack, "GET", "/v1/subscriptions", key=ZAPIER.api_key)
    assert listed.status_code == 200
    assert listed.json() == {"subscriptions": []}


def test_a_move_sends_a_signed_event_to_each_subscription_to_its_type(
    stack: Stack, cleanup: list[tuple[str, str]]
) -> None:
    succeeded_path, failed_path = _hook_path(), _hook_path()
    on_success = _subscribe(stack, f"{_sink(stack)}{succeeded_path}", ["reschedule.succeeded"])
    on_failure = _subscribe(stack, f"{_sink(stack)}{failed_path}", ["reschedule.failed"])
    cleanup.extend([(SUBSCRIBER.api_key, on_success["id"]), (SUBSCRIBER.api_key, on_failure["id"])])
    moved = _move(stack, 300)
    assert moved.status_code == 200, moved.text
    reschedule_id = moved.json()["reschedule_id"]
    (delivery,) = _wait_for(stack, succeeded_path, 1, ARRIVAL_SECONDS)
    event = Webhook(on_success["secret"]).verify(delivery["body"], delivery["headers"])
    assert event["type"] == "reschedule.succeeded"
    assert event["data"]["reschedule_id"] == reschedule_id
    assert event["data"]["status"] == "succeeded"
    assert delivery["headers"]["webhook-id"] == f"msg_{reschedule_id}.{on_success['id']}"
    # Signed with this subscription's secret, not another's.
    with pytest.raises(WebhookVerificationError):
        Webhook(on_failure["secret"]).verify(delivery["body"], delivery["headers"])
    # A failed outcome goes to the other subscription only.
    unknown = _move(stack, 301, unknown=True)
    assert unknown.status_code == 404, unknown.text
    (failed,) = _wait_for(stack, failed_path, 1, ARRIVAL_SECONDS)
    failed_event = Webhook(on_failure["secret"]).verify(failed["body"], failed["headers"])
    assert failed_event["type"] == "reschedule.failed"
    assert failed_event["data"]["reschedule_id"] == unknown.json()["reschedule_id"]
    time.sleep(QUIET_SECONDS)
    assert len(_deliveries(stack, succeeded_path)) == 1


def test_a_410_from_the_url_deletes_the_subscription(stack: Stack, cleanup: list[tuple[str, str]]) -> None:
    path = _hook_path()
    created = _subscribe(stack, f"{_sink(stack)}{path}", ["reschedule.succeeded"])
    cleanup.append((SUBSCRIBER.api_key, created["id"]))
    httpx.post(f"{_sink(stack)}/_sink/faults", json={"status": 410, "times": 1}).raise_for_status()
    assert _move(stack, 302).status_code == 200
    (gone,) = _wait_for(stack, path, 1, ARRIVAL_SECONDS)
    assert gone["status"] == 410
    deadline = time.monotonic() + ARRIVAL_SECONDS
    while created["id"] in _call(stack, "GET", "/v1/subscriptions").text and time.monotonic() < deadline:
        time.sleep(0.2)
    assert created["id"] not in _call(stack, "GET", "/v1/subscriptions").text
    # No more events to it.
    assert _move(stack, 303).status_code == 200
    time.sleep(QUIET_SECONDS)
    assert len(_deliveries(stack, path)) == 1


def test_recent_outcomes_are_the_sources_own_newest_first_by_status(stack: Stack) -> None:
    first = _move(stack, 310).json()["reschedule_id"]
    second = _move(stack, 311).json()["reschedule_id"]
    failed = _move(stack, 312, unknown=True).json()["reschedule_id"]
    succeeded = _call(stack, "GET", "/v1/reschedules?status=succeeded&limit=5")
    assert succeeded.status_code == 200, succeeded.text
    ids = [r["reschedule_id"] for r in succeeded.json()["reschedules"]]
    assert ids[:2] == [second, first]
    assert failed not in ids
    assert all(r["status"] == "succeeded" for r in succeeded.json()["reschedules"])
    either = [
        r["reschedule_id"] for r in _call(stack, "GET", "/v1/reschedules?limit=3").json()["reschedules"]
    ]
    assert either == [failed, second, first]
    assert _call(stack, "GET", "/v1/reschedules?limit=1").json()["reschedules"][0]["reschedule_id"] == failed
    # Another source does not see them.
    theirs = _call(stack, "GET", "/v1/reschedules?limit=100", key=WEBSITE.api_key).text
    assert first not in theirs
    assert failed not in theirs


@pytest.mark.parametrize("query", ["status=queued", "status=", "limit=0", "limit=1000", "limit=x"])
def test_a_bad_status_or_limit_is_a_422(stack: Stack, query: str) -> None:
    answer = _call(stack, "GET", f"/v1/reschedules?{query}")
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["field"] in ("status", "limit")
