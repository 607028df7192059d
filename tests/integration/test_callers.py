"""The three kinds of caller through the real handler (in-process), against the local stack:
Standard Webhooks senders (signed with the reference implementation), signed form links, and
their browser-facing answers (CORS, 303 pages, honeypot)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import pytest
from standardwebhooks.webhooks import Webhook

from local.stack import TABLE_NAMES, Stack
from tests.helpers import FORM, SIGNING, Answer, Invoker, Sandbox, future, link, new_key

CURRENT, NEXT = SIGNING.secrets
REVOKED = "whsec_c2FuZGJveC1zaWduaW5nLXNlY3JldC1yZXZva2Vk"
HTML_FORM = {"content-type": "application/x-www-form-urlencoded", "accept": "text/html,application/xhtml+xml"}


def signed_headers(
    body: str, *secrets: str, msg_id: str | None = None, timestamp: float | None = None
) -> dict[str, str]:
    """The three Standard Webhooks headers, signed by the reference implementation."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    when = datetime.fromtimestamp(time.time() if timestamp is None else timestamp, tz=UTC)
    signatures = " ".join(Webhook(secret).sign(msg_id, when, body) for secret in secrets or (CURRENT,))
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signatures,
    }


def post_signed(invoke: Invoker, body: dict[str, Any], *secrets: str, **kwargs: Any) -> Answer:
    text = json.dumps(body)
    extra = kwargs.pop("headers", {})
    return invoke(
        "POST", "/v1/reschedules", body=text, content_type="application/json",
        headers=signed_headers(text, *secrets, **kwargs) | extra, key=None,
    )  # fmt: skip


def post_form(invoke: Invoker, fields: dict[str, Any], headers: dict[str, str] | None = None) -> Answer:
    fields = {k: v for k, v in fields.items() if k != "url"}
    return invoke(
        "POST", "/v1/reschedules", body=urlencode(fields),
        content_type="application/x-www-form-urlencoded", headers=headers, key=None,
    )  # fmt: skip


def counts(stack: Stack) -> tuple[int, int]:
    dynamodb = stack.client("dynamodb")
    return tuple(
        dynamodb.scan(TableName=TABLE_NAMES[name], Select="COUNT")["Count"]
        for name in ("IdempotencyTable", "ReschedulesTable")
    )


def record(stack: Stack, reschedule_id: str) -> dict[str, Any]:
    item = stack.client("dynamodb").get_item(
        TableName=TABLE_NAMES["ReschedulesTable"], Key={"reschedule_id": {"S": reschedule_id}}
    )["Item"]
    return {k: next(iter(v.values())) for k, v in item.items()}


def form_source(stack: Stack) -> Any:
    return next(s for s in stack.sources if s.name == FORM.name)


# -- Standard Webhooks ---------------------------------------------------------------------------


def test_signed_request_is_accepted_and_its_webhook_id_deduplicates_retries(
    invoke: Invoker, sandboxes: dict[str, Sandbox], stack: Stack
) -> None:
    # Given a sender's delivery, signed with the current secret
    body = {"provider": "iclosed", "booking_id": 1001, "start": future(days=70), "timezone": "UTC"}
    msg_id = f"msg_{uuid.uuid4().hex}"
    first = post_signed(invoke, body, msg_id=msg_id)
    assert first.status == 200, first.body
    assert record(stack, first.body["reschedule_id"])["source"] == SIGNING.name
    # When the sender retries it: the same webhook-id, a new timestamp, signed with the next secret
    retry = post_signed(invoke, body, NEXT, msg_id=msg_id, timestamp=time.time() + 2)
    # Then the stored answer comes back, and the provider was called once
    assert retry.status == 200
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.body == first.body | {"replayed": True}
    assert len(sandboxes["iclosed"].calls()) == 1
    # And the very same request, replayed byte for byte within the tolerance, is a replay too
    assert post_signed(invoke, body, msg_id=msg_id).body["replayed"] is True
    # A new delivery (a new webhook-id) runs
    again = post_signed(invoke, body | {"start": future(days=70, hour=11)})
    assert again.status == 200
    assert again.body["replayed"] is False
    assert len(sandboxes["iclosed"].calls()) == 2


def test_a_signed_post_is_keyed_by_its_webhook_id_and_a_different_idempotency_key_is_422(
    invoke: Invoker, sandboxes: dict[str, Sandbox], stack: Stack
) -> None:
    # Given a signed POST that moved a booking
    body = {"provider": "iclosed", "booking_id": 1002, "start": future(days=71), "timezone": "UTC"}
    text = json.dumps(body)
    headers = signed_headers(text)
    first = post_signed(invoke, body, msg_id=headers["webhook-id"])
    assert first.status == 200, first.body
    # When someone who saw it sends it again with a fresh, unsigned Idempotency-Key (issue 23: a replay)
    replays = [
        invoke("POST", "/v1/reschedules", body=text, content_type="application/json",
               headers=headers | {"idempotency-key": new_key()}, key=None)
        for _ in range(2)
    ]  # fmt: skip
    # Then each is refused with 422 and recorded for the signing source; the provider was called once
    assert [(r.status, r.body["code"]) for r in replays] == [(422, "idempotency_key_mismatch")] * 2
    assert record(stack, replays[0].body["reschedule_id"])["source"] == SIGNING.name
    assert len(sandboxes["iclosed"].calls()) == 1
    # An Idempotency-Key equal to the webhook-id is the same key: the stored answer, replayed
    same = invoke(
        "POST", "/v1/reschedules", body=text, content_type="application/json",
        headers=headers | {"idempotency-key": headers["webhook-id"]}, key=None,
    )  # fmt: skip
    assert (same.status, same.body["replayed"]) == (200, True)
    assert len(sandboxes["iclosed"].calls()) == 1


def test_a_webhook_id_reused_with_another_body_is_refused(
    invoke: Invoker, sandboxes: dict[str, Sandbox]
) -> None:
    # Given a signed POST that moved a booking under a webhook-id
    msg_id = f"msg_{uuid.uuid4().hex}"
    body = {"provider": "iclosed", "booking_id": 1002, "start": future(days=71, hour=12), "timezone": "UTC"}
    assert post_signed(invoke, body, msg_id=msg_id).status == 200
    # When the same webhook-id comes again, validly signed, over another body (another start)
    other = post_signed(invoke, body | {"start": future(days=71, hour=13)}, msg_id=msg_id)
    # Then it is refused: a webhook-id is single use per source
    assert (other.status, other.body["code"]) == (422, "idempotency_key_reused")
    assert len(sandboxes["iclosed"].calls()) == 1


@pytest.mark.parametrize(
    ("secrets", "day"),
    [((CURRENT,), 72), ((NEXT,), 73), ((CURRENT, NEXT), 74), ((REVOKED, NEXT), 75), ((NEXT, REVOKED), 76)],
    ids=["old", "new", "old+new", "revoked+new", "new+revoked"],
)
def test_rotation_any_listed_secret_signs(
    secrets: tuple[str, ...], day: int, invoke: Invoker, sandboxes: dict[str, Sandbox]
) -> None:
    booking = sandboxes["novacal"].bookings[0]
    answer = post_signed(
        invoke, {"provider": "novacal", "booking_id": booking, "start": future(days=day) + "Z"}, *secrets
    )
    assert answer.status == 200, answer.body
    assert len(sandboxes["novacal"].calls()) == 1


@pytest.mark.parametrize(
    ("offset", "status"),
    [(-300, 200), (-301, 401), (300, 200), (301, 401)],
    ids=["exactly-5-min-old", "just-over-5-min-old", "exactly-5-min-ahead", "just-over-5-min-ahead"],
)
def test_timestamp_tolerance_edges_in_the_handler(
    offset: int, status: int, invoke: Invoker, relay_module: Any, monkeypatch: pytest.MonkeyPatch,
    sandboxes: dict[str, Sandbox],
) -> None:  # fmt: skip
    # Given the relay's clock stopped at a whole second
    now = float(int(time.time()))
    monkeypatch.setattr(relay_module, "time", SimpleNamespace(time=lambda: now))
    body = {
        "provider": "iclosed",
        "booking_id": 1003,
        "start": future(days=77, minute=offset % 60),
        "timezone": "UTC",
    }
    # When a request signed `offset` seconds from it arrives
    answer = post_signed(invoke, body, timestamp=now + offset)
    # Then up to five minutes either way passes, one second more does not
    assert answer.status == status, answer.body
    if status == 401:
        assert answer.body["code"] == "signature_timestamp_out_of_range"
        assert sandboxes["iclosed"].calls() == []


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"webhook-signature": None}, "signature_missing"),
        ({"webhook-timestamp": None}, "signature_missing"),
        ({"webhook-signature": "v1 abc"}, "signature_malformed"),
        ({"webhook-signature": "v1,%%%"}, "signature_malformed"),
        ({"webhook-timestamp": "yesterday"}, "signature_malformed"),
        ({"webhook-timestamp": "1000000000"}, "signature_timestamp_out_of_range"),
        ({"webhook-id": "msg_someone_else"}, "signature_mismatch"),
        ({"webhook-signature": Webhook(REVOKED).sign("x", datetime.now(tz=UTC), "{}")}, "signature_mismatch"),
    ],
)
def test_bad_signatures_are_401_and_leave_nothing_stored(
    change: dict[str, str | None], code: str, invoke: Invoker, sandboxes: dict[str, Sandbox], stack: Stack
) -> None:
    body = json.dumps(
        {"provider": "iclosed", "booking_id": 1004, "start": future(days=78), "timezone": "UTC"}
    )
    headers = {k: v for k, v in (signed_headers(body) | change).items() if v is not None}
    before = counts(stack)
    answer = invoke(
        "POST", "/v1/reschedules", body=body, content_type="application/json", headers=headers, key=None
    )
    assert (answer.status, answer.body["code"]) == (401, code)
    assert answer.headers["content-type"] == "application/problem+json"
    text = json.dumps(answer.body)
    for secret in (CURRENT, NEXT):
        assert secret.removeprefix("whsec_")[:10] not in text
    assert counts(stack) == before
    assert sandboxes["iclosed"].calls() == []


def test_a_signed_body_changed_in_transit_is_refused(invoke: Invoker, sandboxes: dict[str, Sandbox]) -> None:
    body = json.dumps(
        {"provider": "iclosed", "booking_id": 1001, "start": future(days=79), "timezone": "UTC"}
    )
    headers = signed_headers(body)
    answer = invoke(
        "POST", "/v1/reschedules", body=body.replace("1001", "1002"), content_type="application/json",
        headers=headers, key=None,
    )  # fmt: skip
    assert (answer.status, answer.body["code"]) == (401, "signature_mismatch")
    assert sandboxes["iclosed"].calls() == []


def signed_read_headers(method: str, path: str) -> dict[str, str]:
    """A read or cancel signs its request target (`GET /v1/...?query`) in the body's place."""
    return signed_headers(f"{method} {path}")


def test_signed_read_of_own_record(invoke: Invoker) -> None:
    body = {"provider": "iclosed", "booking_id": 1005, "start": future(days=80), "timezone": "UTC"}
    created = post_signed(invoke, body)
    path = f"/v1/reschedules/{created.body['reschedule_id']}"
    mine = invoke("GET", path, headers=signed_read_headers("GET", path), key=None)
    assert mine.status == 200, mine.body
    assert mine.body["booking_id"] == "1005"
    assert invoke("GET", path).status == 404  # another source (zapier-demo) does not see it


def test_a_read_signature_proves_only_its_own_method_path_and_query(invoke: Invoker) -> None:
    # Given a signed source's record, and the headers of one signed read of it
    body = {"provider": "iclosed", "booking_id": 1005, "start": future(days=80, hour=11), "timezone": "UTC"}
    created = post_signed(invoke, body)
    path = f"/v1/reschedules/{created.body['reschedule_id']}"
    read = signed_read_headers("GET", path)
    history = "/v1/bookings/iclosed/1005/reschedules"
    # Then those headers prove nothing else: a DELETE, another path, another query, an empty-body signature
    refused = [
        invoke("DELETE", path, headers=read, key=None),
        invoke("GET", history, headers=read, key=None),
        invoke("GET", f"{path}?x=1", headers=read, key=None),
        invoke("GET", path, headers=signed_headers(""), key=None),  # what issue 23 found accepted
    ]
    assert [(r.status, r.body["code"]) for r in refused] == [(401, "signature_mismatch")] * 4
    # While each, signed for itself, is accepted
    listed = invoke(
        "GET", f"{history}?limit=5", headers=signed_read_headers("GET", f"{history}?limit=5"), key=None
    )
    assert listed.status == 200, listed.body
    assert created.body["reschedule_id"] in [item["reschedule_id"] for item in listed.body["reschedules"]]
    cancel = invoke("DELETE", path, headers=signed_read_headers("DELETE", path), key=None)
    assert (cancel.status, cancel.body["code"]) == (409, "not_queued")


# -- signed form links -----------------------------------------------------------------------------


def test_link_form_post_moves_exactly_the_signed_booking(
    invoke: Invoker, sandboxes: dict[str, Sandbox], stack: Stack
) -> None:
    booking = sandboxes["novacal"].bookings[1]
    fields = link(stack, "novacal", booking) | {
        "date": future(days=81)[:10],
        "time": "15:30",
        "timezone": "Europe/Berlin",
        "website": "",
    }
    answer = post_form(invoke, fields)
    assert answer.status == 200, answer.body
    (call,) = sandboxes["novacal"].calls()
    assert call["path"] == f"/v1/events/{booking}"
    assert record(stack, answer.body["reschedule_id"])["source"] == FORM.name


def test_link_fields_in_a_json_body_work_too(
    invoke: Invoker, sandboxes: dict[str, Sandbox], stack: Stack
) -> None:
    fields = {k: v for k, v in link(stack, "iclosed", "1002").items() if k != "url"}
    body = fields | {"booking_id": 1002, "start": future(days=82), "timezone": "UTC"}
    answer = invoke("POST", "/v1/reschedules", body=body, key=None)
    assert answer.status == 200, answer.body
    assert len(sandboxes["iclosed"].calls()) == 1


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        ("other-booking", "link_invalid"),
        ("expired", "link_expired"),
        ("extended", "link_invalid"),
        ("no-token", "link_invalid"),
        ("unknown-source", "link_invalid"),
        ("other-provider", "link_invalid"),
    ],
)
def test_bad_links_are_401_and_leave_nothing_stored(
    tamper: str, code: str, invoke: Invoker, sandboxes: dict[str, Sandbox], stack: Stack
) -> None:
    mine, theirs = sandboxes["novacal"].bookings[2], sandboxes["novacal"].bookings[3]
    fields = link(stack, "novacal", mine, expires_in=-1 if tamper == "expired" else 600)
    if tamper == "other-booking":
        fields["booking_id"] = theirs
    elif tamper == "extended":
        fields["expires"] = str(int(fields["expires"]) + 86400)
    elif tamper == "no-token":
        del fields["token"]
    elif tamper == "unknown-source":
        fields["source"] = "zapier-demo"
    elif tamper == "other-provider":
        fields["provider"] = "iclosed"
    before = counts(stack)
    answer = post_form(invoke, fields | {"start": future(days=83) + "Z"})
    assert (answer.status, answer.body["code"]) == (401, code)
    assert counts(stack) == before
    assert sandboxes["novacal"].calls() == sandboxes["iclosed"].calls() == []


def test_browser_form_post_is_sent_to_the_success_page(
    invoke: Invoker, sandboxes: dict[str, Sandbox], stack: Stack
) -> None:
    booking = sandboxes["novacal"].bookings[4]
    fields = link(stack, "novacal", booking) | {"start": future(days=84) + "Z"}
    answer = post_form(invoke, fields, headers=HTML_FORM | {"origin": form_source(stack).origin})
    assert answer.status == 303
    start = fields["start"].replace("Z", "+00:00")
    assert answer.headers["location"] == form_source(stack).pages["success_url"] + "?" + urlencode(
        {"status": "ok", "start": start, "timezone": "UTC"}
    )
    assert answer.headers["access-control-allow-origin"] == form_source(stack).origin
    assert len(sandboxes["novacal"].calls()) == 1


@pytest.mark.parametrize(("expires_in", "code"), [(-60, "link_expired"), (600, "validation_failed")])
def test_browser_form_failures_are_sent_to_the_error_page_with_the_code(
    expires_in: int, code: str, invoke: Invoker, sandboxes: dict[str, Sandbox], stack: Stack
) -> None:
    fields = link(stack, "novacal", sandboxes["novacal"].bookings[0], expires_in=expires_in)
    answer = post_form(invoke, fields | {"start": "2001-01-01T10:00:00Z"}, headers=HTML_FORM)
    assert answer.status == 303
    assert answer.headers["location"] == f"{form_source(stack).pages['error_url']}?status=error&code={code}"
    assert sandboxes["novacal"].calls() == []


def test_a_page_address_never_comes_from_the_request(
    invoke: Invoker, sandboxes: dict[str, Sandbox], stack: Stack
) -> None:
    fields = link(stack, "novacal", sandboxes["novacal"].bookings[1]) | {"start": future(days=85) + "Z"}
    for name in ("success_url", "redirect", "next"):
        answer = post_form(invoke, fields | {name: "https://evil.test/"}, headers=HTML_FORM)
        assert answer.status == 303
        assert answer.headers["location"].startswith(form_source(stack).pages["error_url"])  # unknown field
    assert sandboxes["novacal"].calls() == []


def test_honeypot_is_answered_as_accepted_recorded_as_spam_and_calls_nobody(
    invoke: Invoker, sandboxes: dict[str, Sandbox], stack: Stack
) -> None:
    booking = sandboxes["novacal"].bookings[2]
    trap = {FORM.honeypot: "http://cheap-pills.test", "notes": "sandbox-invitee@example.test"}
    fields = link(stack, "novacal", booking) | {"start": future(days=86) + "Z"} | trap
    answer = post_form(invoke, fields)
    assert (answer.status, answer.body["status"]) == (202, "accepted")
    assert sandboxes["novacal"].calls() == []
    stored = record(stack, answer.body["reschedule_id"])
    assert stored["status"] == "rejected_spam"
    assert (stored["source"], stored["provider"], stored["booking_id"]) == (FORM.name, "novacal", booking)
    for value in (*trap.values(), fields["token"]):
        assert value not in json.dumps(stored)
    # A browser that filled it is sent to the success page, like anyone else
    page = post_form(invoke, fields, headers=HTML_FORM)
    assert page.status == 303
    assert page.headers["location"].endswith("/rescheduled?status=ok")
    assert sandboxes["novacal"].calls() == []


# -- CORS and the Origin check ---------------------------------------------------------------------


def test_posts_from_an_allowed_origin_get_acao_and_others_are_refused(
    invoke: Invoker, sandboxes: dict[str, Sandbox], stack: Stack
) -> None:
    origin = form_source(stack).origin
    fields = link(stack, "novacal", sandboxes["novacal"].bookings[3]) | {"start": future(days=87) + "Z"}
    foreign = post_form(invoke, fields, headers={"origin": "http://localhost:1"})
    assert (foreign.status, foreign.body["code"]) == (403, "origin_not_allowed")
    assert "access-control-allow-origin" not in foreign.headers
    assert foreign.headers["vary"] == "Origin"
    allowed = post_form(invoke, fields, headers={"origin": origin})
    assert allowed.status == 200
    assert allowed.headers["access-control-allow-origin"] == origin
    assert allowed.headers["vary"] == "Origin"
    assert len(sandboxes["novacal"].calls()) == 1
    # CORS is not authentication: an allowed origin with a bad token is still refused (and may read why)
    refused = post_form(invoke, fields | {"token": "A" * 43}, headers={"origin": origin})
    assert (refused.status, refused.body["code"]) == (401, "link_invalid")
    assert refused.headers["access-control-allow-origin"] == origin


def test_preflight_answers_allowed_origins_only(invoke: Invoker, stack: Stack) -> None:
    origin = form_source(stack).origin
    request = {"access-control-request-method": "POST", "access-control-request-headers": "content-type"}
    granted = invoke("OPTIONS", "/v1/reschedules", headers=request | {"origin": origin}, key=None)
    assert granted.status == 204
    assert granted.headers["access-control-allow-origin"] == origin
    assert granted.headers["access-control-allow-methods"] == "POST"
    assert granted.headers["access-control-allow-headers"] == "content-type, idempotency-key"
    assert granted.headers["vary"] == "Origin"
    assert int(granted.headers["access-control-max-age"]) > 0
    for other in ("http://localhost:1", origin + "0", origin.replace("127.0.0.1", "localhost"), "null"):
        refused = invoke("OPTIONS", "/v1/reschedules", headers=request | {"origin": other}, key=None)
        assert (refused.status, refused.body["code"]) == (403, "origin_not_allowed")
        assert not any(name.startswith("access-control-allow") for name in refused.headers)
    plain = invoke("OPTIONS", "/v1/reschedules", key=None)
    assert plain.status == 204
    assert "access-control-allow-origin" not in plain.headers
