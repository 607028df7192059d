"""Form tools' own webhooks through the relay on the local stack, to a moved sandbox booking.

Each tool's sample delivery (tests/fixtures/forms/) is filled in, signed here the way the tool signs
it (written from the tools' docs, not with the relay's code), and POSTed to /v1/intake/...
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from local.seed import FILLOUT_DEMO, JOTFORM_DEMO, TALLY_DEMO, TYPEFORM_DEMO, WEBFLOW_DEMO, DemoFormSource
from local.stack import Stack
from tests.helpers import Sandbox, future

FIXTURES = Path(__file__).parent.parent / "fixtures" / "forms"
TIMEOUT = 30


def api(stack: Stack) -> str:
    assert stack.api is not None
    return stack.api.url


def filled(kind: str, *, booking: str, start: str, delivery_id: str) -> Any:
    """The tool's sample delivery with this booking, new wall time and delivery id."""
    day, clock = start[:10], start[11:16]
    text = (FIXTURES / f"{kind}.json").read_text()
    for placeholder, value in {
        "__BOOKING_ID__": booking,
        "__DATE__": day,
        "__TIME__": clock,
        "__START__": start,
        "__YEAR__": day[:4],
        "__MONTH__": day[5:7],
        "__DAY__": day[8:10],
        "__HOUR__": clock[:2],
        "__MINUTE__": clock[3:5],
        "__DELIVERY_ID__": delivery_id,
    }.items():
        text = text.replace(placeholder, value)
    return json.loads(text)


def multipart(fields: dict[str, str]) -> tuple[bytes, str]:
    """A multipart/form-data body, as Jotform posts its webhook."""
    boundary = "sandbox-boundary-" + uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    return ("".join(parts) + f"--{boundary}--\r\n").encode(), f"multipart/form-data; boundary={boundary}"


def _hmac(secret: str, content: bytes) -> bytes:
    return hmac.new(secret.encode(), content, hashlib.sha256).digest()


def signed_request(
    source: DemoFormSource, payload: Any, *, secret: str | None = None, at_ms: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """(body, headers) as the tool sends them; `secret` overrides the source's (a wrong one)."""
    key = source.secret if secret is None else secret
    if source.kind == "jotform":
        body, content_type = multipart(
            {k: json.dumps(v) if k == "rawRequest" else str(v) for k, v in payload.items()}
        )
        return body, {"content-type": content_type}
    body = json.dumps(payload).encode()
    headers = {"content-type": "application/json"}
    if source.kind == "typeform":
        headers["typeform-signature"] = "sha256=" + base64.b64encode(_hmac(key, body)).decode()
    elif source.kind == "tally":
        headers["tally-signature"] = base64.b64encode(_hmac(key, body)).decode()
    elif source.kind == "webflow":
        stamp = str(int(time.time() * 1000) if at_ms is None else at_ms)
        headers["x-webflow-timestamp"] = stamp
        headers["x-webflow-signature"] = _hmac(key, f"{stamp}:".encode() + body).hex()
    return body, headers


def url(stack: Stack, source: DemoFormSource, token: str | None = None) -> str:
    if source.signed:
        return api(stack) + source.intake_path
    return f"{api(stack)}/v1/intake/{source.name}/{source.secret if token is None else token}"


ALL_KINDS = [TYPEFORM_DEMO, TALLY_DEMO, WEBFLOW_DEMO, JOTFORM_DEMO, FILLOUT_DEMO]


@pytest.mark.parametrize("source", ALL_KINDS, ids=lambda s: s.kind)
def test_each_tool_moves_the_booking_once_and_a_redelivery_moves_nothing(
    stack: Stack, sandboxes: dict[str, Sandbox], source: DemoFormSource
) -> None:
    # Given the tool's own delivery for a sandbox booking, signed (or tokened) its way
    booking = sandboxes["novacal"].bookings[ALL_KINDS.index(source)]
    start = future(days=120 + ALL_KINDS.index(source), hour=15, minute=30)
    payload = filled(source.kind, booking=booking, start=start, delivery_id=f"sbx-{uuid.uuid4()}")
    body, headers = signed_request(source, payload)
    # When the tool posts it
    answer = httpx.post(url(stack, source), content=body, headers=headers, timeout=TIMEOUT)
    # Then the booking is moved to the mapped time in the source's constant zone
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["status"] == "succeeded"
    assert (result["booking_id"], result["timezone"]) == (booking, source.constants["timezone"])
    assert result["start"].startswith(start[:16])
    (call,) = sandboxes["novacal"].calls()
    assert call["path"] == f"/v1/events/{booking}"
    # When the tool delivers the same thing again (it did not see our answer)
    again = httpx.post(url(stack, source), content=body, headers=headers, timeout=TIMEOUT)
    # Then it is answered 2xx from the record, and nothing moves twice
    assert again.status_code == 200, again.text
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json()["reschedule_id"] == result["reschedule_id"]
    assert len(sandboxes["novacal"].calls()) == 1


@pytest.mark.parametrize("source", [TYPEFORM_DEMO, TALLY_DEMO, WEBFLOW_DEMO], ids=lambda s: s.kind)
def test_a_wrong_or_missing_signature_is_401_and_moves_nothing(
    stack: Stack, sandboxes: dict[str, Sandbox], source: DemoFormSource
) -> None:
    payload = filled(
        source.kind, booking=sandboxes["novacal"].bookings[0], start=future(days=140), delivery_id="sbx-x"
    )
    body, headers = signed_request(source, payload, secret="sandbox-not-the-right-secret")
    wrong = httpx.post(url(stack, source), content=body, headers=headers, timeout=TIMEOUT)
    assert (wrong.status_code, wrong.json()["code"]) == (401, "signature_mismatch"), wrong.text
    # The right signature over other bytes: the body was changed on the way
    body, headers = signed_request(source, payload)
    tampered = httpx.post(url(stack, source), content=body + b" ", headers=headers, timeout=TIMEOUT)
    assert (tampered.status_code, tampered.json()["code"]) == (401, "signature_mismatch")
    unsigned = {"content-type": "application/json"}
    missing = httpx.post(url(stack, source), content=body, headers=unsigned, timeout=TIMEOUT)
    assert (missing.status_code, missing.json()["code"]) == (401, "signature_missing"), missing.text
    assert sandboxes["novacal"].calls() == []


def test_a_webflow_delivery_older_or_newer_than_five_minutes_is_refused(
    stack: Stack, sandboxes: dict[str, Sandbox]
) -> None:
    payload = filled(
        "webflow", booking=sandboxes["novacal"].bookings[0], start=future(days=141), delivery_id="x"
    )
    now_ms = int(time.time() * 1000)
    for at_ms in (now_ms - 5 * 60 * 1000 - 5000, now_ms + 5 * 60 * 1000 + 5000):
        body, headers = signed_request(WEBFLOW_DEMO, payload, at_ms=at_ms)
        answer = httpx.post(url(stack, WEBFLOW_DEMO), content=body, headers=headers, timeout=TIMEOUT)
        assert (answer.status_code, answer.json()["code"]) == (401, "signature_timestamp_out_of_range")
    # Four minutes old (a slow delivery) is still fine: the window is five
    body, headers = signed_request(
        WEBFLOW_DEMO,
        payload | {"payload": payload["payload"] | {"id": f"sbx-{uuid.uuid4()}"}},
        at_ms=now_ms - 4 * 60 * 1000,
    )
    assert (
        httpx.post(url(stack, WEBFLOW_DEMO), content=body, headers=headers, timeout=TIMEOUT).status_code
        == 200
    )
    assert len(sandboxes["novacal"].calls()) == 1


@pytest.mark.parametrize("source", [JOTFORM_DEMO, FILLOUT_DEMO], ids=lambda s: s.kind)
def test_an_unsigned_tool_needs_its_url_token(
    stack: Stack, sandboxes: dict[str, Sandbox], source: DemoFormSource
) -> None:
    payload = filled(
        source.kind, booking=sandboxes["novacal"].bookings[0], start=future(days=142), delivery_id="sbx-y"
    )
    body, headers = signed_request(source, payload)
    wrong = httpx.post(
        url(stack, source, token="sandbox-guessed-token"), content=body, headers=headers, timeout=TIMEOUT
    )
    assert (wrong.status_code, wrong.json()["code"]) == (401, "token_invalid"), wrong.text
    bare = httpx.post(f"{api(stack)}/v1/intake/{source.name}", content=body, headers=headers, timeout=TIMEOUT)
    assert (bare.status_code, bare.json()["code"]) == (401, "token_missing"), bare.text
    assert source.secret not in wrong.text + bare.text
    assert sandboxes["novacal"].calls() == []


def test_a_mapping_that_finds_nothing_names_the_field_and_its_expression(
    stack: Stack, sandboxes: dict[str, Sandbox]
) -> None:
    # Given a Typeform delivery whose form has no hidden booking_id (the link was opened without it)
    payload = filled("typeform", booking="x", start=future(days=143), delivery_id=f"sbx-{uuid.uuid4()}")
    del payload["form_response"]["hidden"]
    body, headers = signed_request(TYPEFORM_DEMO, payload)
    answer = httpx.post(url(stack, TYPEFORM_DEMO), content=body, headers=headers, timeout=TIMEOUT)
    # Then 422: a retry cannot fix it, and the problem names the field and the expression
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    (error,) = problem["errors"]
    assert (error["field"], error["code"]) == ("booking_id", "mapping_missed")
    assert "form_response.hidden.booking_id" in error["message"]
    assert "booking_id (form_response.hidden.booking_id)" in problem["detail"]
    assert sandboxes["novacal"].calls() == []


def test_an_unknown_intake_and_a_non_form_source_are_the_same_404(stack: Stack) -> None:
    for name in ("no-such-form", "zapier-demo"):
        answer = httpx.post(f"{api(stack)}/v1/intake/{name}", json={"x": 1}, timeout=TIMEOUT)
        assert (answer.status_code, answer.json()["code"]) == (404, "intake_not_found")
