"""No token, key, signature or invitee personal data in any log line, across success and every failure."""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping

import httpx
import pytest

from local.seed import PROVIDER_TOKENS
from local.stack import start_stack
from tests.helpers import FORM, WEBSITE, ZAPIER, Sandbox, future, new_key

INVITEE_EMAIL = "sandbox-person@example.test"
INVITEE_PHONE = "+1-555-0199"
CALLBACK_ARRIVAL_SECONDS = 20


def test_logs_of_a_full_run_hold_no_secrets_or_personal_data(capfd: pytest.CaptureFixture[str]) -> None:
    # A stack of its own, started inside the capture, so every process's output is captured.
    with start_stack(api_port=0, workers=1) as stack:
        assert stack.api is not None
        url = f"{stack.api.url}/v1/reschedules"
        auth = {"Authorization": f"Bearer {ZAPIER.api_key}"}
        nova = Sandbox(stack.sandboxes["novacal"].url, list(stack.sandboxes["novacal"].bookings))
        ic = Sandbox(stack.sandboxes["iclosed"].url, list(stack.sandboxes["iclosed"].bookings))
        answers = {"email": INVITEE_EMAIL, "phone": INVITEE_PHONE}
        nova_body = {"provider": "novacal", "booking_id": nova.bookings[0], "answers": answers}
        statuses = []

        def post(body: Mapping[str, object], **headers: str) -> None:
            answer = httpx.post(
                url, json=body, headers=auth | {"Idempotency-Key": new_key()} | headers, timeout=30
            )
            statuses.append(answer.status_code)

        post(nova_body | {"start": future(days=100) + "Z"})  # success (the provider echoes personal data)
        post(
            {
                "provider": "iclosed",
                "id": 1001,
                "start": future(days=100),
                "timezone": "UTC",
                "notes": f"call {INVITEE_PHONE}",
            }
        )
        for fault in (
            {"status": 503, "times": 3},
            {"status": 401, "times": 2},
            {"status": 429, "retry_after": 60},
            {"status": 422},
            {"status": 404},
            {"drop_connection": True, "times": 3},
        ):
            nova.fault(**fault)
            post(nova_body | {"start": future(days=101) + "Z"})
        ic.fault(status=500)
        post({"provider": "iclosed", "id": 1002, "start": future(days=102), "timezone": "UTC"})
        post(nova_body | {"start": "2001-01-01T00:00:00Z", "evil": INVITEE_EMAIL})  # invalid
        post(nova_body | {"start": future(days=103) + "Z"}, Authorization=f"Bearer {WEBSITE.api_key}x")  # 401
        post(
            {"provider": "iclosed", "id": 1003, "start": future(days=104), "timezone": "UTC"},
            Authorization=f"Bearer {WEBSITE.api_key}",
        )  # 403
        # website-demo has an outcome callback: its event is signed and POSTed to the sink.
        post(nova_body | {"start": future(days=105) + "Z"}, Authorization=f"Bearer {WEBSITE.api_key}")
        assert stack.callback_sink is not None
        deadline = time.monotonic() + CALLBACK_ARRIVAL_SECONDS
        while not stack.callback_sink.deliveries and time.monotonic() < deadline:
            time.sleep(0.2)
        signatures = [d["headers"]["webhook-signature"] for d in stack.callback_sink.deliveries]
        assert signatures, "the callback did not arrive"
        # The event is the public record: the invitee's answers are not in it either.
        assert all(INVITEE_EMAIL not in d["body"] for d in stack.callback_sink.deliveries)
        raw = f"email={INVITEE_EMAIL}&provider=novacal".encode()
        httpx.post(url, content=raw, headers=auth | {"Content-Type": "text/plain"}, timeout=30)
        with socket.create_connection(
            (stack.api.url.split("//")[1].split(":")[0], stack.api.port), timeout=10
        ) as c:
            c.sendall(
                b"POST /v1/reschedules HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Authorization: Bearer " + ZAPIER.api_key.encode() + b'\r\nContent-Length: 9\r\n\r\n{"emai'
            )
            c.shutdown(socket.SHUT_WR)
            c.recv(4096)
        assert 200 in statuses, statuses
        assert {401, 403, 422, 502, 503, 429, 404} <= set(statuses), statuses
    out, err = capfd.readouterr()
    logs = out + err
    assert '"level":"INFO"' in logs  # the capture really holds the relay's log lines
    for needle in [
        *PROVIDER_TOKENS.values(),
        ZAPIER.api_key,
        WEBSITE.api_key,
        INVITEE_EMAIL,
        INVITEE_PHONE,
        *(s.callback_secret for s in (WEBSITE, FORM) if s.callback_secret),
        *(s.callback_secret.removeprefix("whsec_") for s in (WEBSITE, FORM) if s.callback_secret),
        *(part.removeprefix("v1,") for signature in signatures for part in signature.split()),
        "sandbox-booker-",
        "sandbox-guest-",
        "sandbox-invitee-",
        "+1-555-0100",
    ]:
        assert needle not in logs, f"{needle!r} found in the logs"
