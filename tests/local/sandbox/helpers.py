"""What the sandbox tests share: how to make a call each sandbox accepts, and the control surface."""

from __future__ import annotations

import base64
from typing import Any

import httpx

from local.sandbox import SandboxProvider
from local.sandbox.bookings import ACUITY_IDS

TIMEOUT = httpx.Timeout(10.0)
MISSING = object()  # marks a field to remove from a valid body
# One pooled client for control calls and one-off provider calls; tests about connections open their own.
HTTP = httpx.Client(timeout=TIMEOUT)

ICLOSED_RESCHEDULE_PATH = "/v1/eventCalls/reschedule"
CALCOM_VERSION = "2024-08-13"
# Not the default tokens, so the tests prove `token=` is what each server checks.
TOKENS = {
    "iclosed": "iclosed-sandbox-token-0001",
    "novacal": "novacal-test-token-0002",
    "calcom": "cal_sandbox_test_key_0002",
    "acuity": "20002:sandbox-acuity-test-key-0002",
}
# The status of a successful move (Cal.com creates a booking, so 201).
SUCCESS_STATUS = {"iclosed": 200, "novacal": 200, "calcom": 201, "acuity": 200}
CONTROL_RESOURCES = ("faults", "calls", "stats", "outage", "limits")


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


def auth(provider: SandboxProvider) -> dict[str, str]:
    """The headers that authenticate a call (and, for Cal.com, pick the API version)."""
    if provider.name == "acuity":
        return {"Authorization": basic(provider.token)}
    headers = {"Authorization": f"Bearer {provider.token}"}
    if provider.name == "calcom":
        headers["cal-api-version"] = CALCOM_VERSION
    return headers


def rate_key(provider: SandboxProvider) -> str:
    """What `/_sandbox/limits` takes as `token` for this sandbox's accepted credential."""
    return provider.token.split(":", 1)[0] if provider.name == "acuity" else provider.token


def with_patch(body: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    merged = {**body, **patch}
    return {key: value for key, value in merged.items() if value is not MISSING}


def valid_iclosed_body(booking_id: int = 1003) -> dict[str, Any]:
    return {"id": booking_id, "dateTime": "2031-09-10T11:00:00", "timeZone": "America/Chicago"}


def valid_novacal_body() -> dict[str, Any]:
    return {
        "start": "2031-09-10T16:00:00Z",
        "end": "2031-09-10T16:30:00Z",
        "timezone": "America/Chicago",
        "time_format": 12,
    }


def valid_calcom_body() -> dict[str, Any]:
    return {"start": "2031-09-10T16:00:00Z"}


def valid_acuity_body() -> dict[str, Any]:
    return {"datetime": "2031-09-10T11:00:00-0500", "timezone": "America/Chicago"}


def snapshot(provider: SandboxProvider) -> list[dict[str, Any]]:
    response = HTTP.get(f"{provider.url}/_sandbox/bookings")
    assert response.status_code == 200
    items: list[dict[str, Any]] = response.json()
    return items


def item_id(provider: SandboxProvider, item: dict[str, Any]) -> str:
    return str(item["uid"] if provider.name == "calcom" else item["id"])


def booking(provider: SandboxProvider, booking_id: str) -> dict[str, Any]:
    return next(item for item in snapshot(provider) if item_id(provider, item) == booking_id)


def latest_calcom_uid(provider: SandboxProvider, uid: str) -> str:
    """Follow rescheduledToUid from `uid` to the booking that is current now (control route, not logged)."""
    by_uid = {item["uid"]: item for item in snapshot(provider)}
    while (moved_to := by_uid[uid]["rescheduledToUid"]) is not None:
        uid = moved_to
    return uid


def valid_call(provider: SandboxProvider) -> tuple[str, str, dict[str, Any]]:
    """Method, path and body of a move the provider accepts (its third seeded booking)."""
    name = provider.name
    if name == "iclosed":
        return "PUT", ICLOSED_RESCHEDULE_PATH, valid_iclosed_body(int(provider.bookings[2]))
    if name == "novacal":
        return "PUT", f"/v1/events/{provider.bookings[2]}", valid_novacal_body()
    if name == "calcom":
        uid = latest_calcom_uid(provider, provider.bookings[2])
        return "POST", f"/v2/bookings/{uid}/reschedule", valid_calcom_body()
    return "PUT", f"/api/v1/appointments/{ACUITY_IDS[2]}/reschedule", valid_acuity_body()


def send_valid(provider: SandboxProvider, client: httpx.Client | None = None) -> httpx.Response:
    method, path, body = valid_call(provider)
    if client is not None:
        return client.request(method, path, json=body, headers=auth(provider))
    return HTTP.request(method, f"{provider.url}{path}", json=body, headers=auth(provider))


def control(provider: SandboxProvider, method: str, resource: str, **spec: Any) -> httpx.Response:
    json_body = spec if method == "POST" else None
    return HTTP.request(method, f"{provider.url}/_sandbox/{resource}", json=json_body)


def arm_fault(provider: SandboxProvider, **fault: Any) -> None:
    response = control(provider, "POST", "faults", **fault)
    assert response.status_code == 204, response.text


def calls(provider: SandboxProvider) -> list[dict[str, Any]]:
    response = HTTP.get(f"{provider.url}/_sandbox/calls")
    assert response.status_code == 200
    logged: list[dict[str, Any]] = response.json()
    return logged


def stats(provider: SandboxProvider) -> dict[str, int]:
    result: dict[str, int] = HTTP.get(f"{provider.url}/_sandbox/stats").json()
    return result


def reset(provider: SandboxProvider) -> None:
    """No faults, outage or limits, an empty call log and zeroed stats."""
    for resource in CONTROL_RESOURCES:
        assert HTTP.delete(f"{provider.url}/_sandbox/{resource}").status_code == 204


def assert_provider_error(provider: SandboxProvider, response: httpx.Response, message: str) -> None:
    """The response body is this provider's error shape carrying `message`."""
    body = response.json()
    name = provider.name
    if name == "iclosed":
        assert body == {"message": message, "errors": []}
    elif name == "novacal":
        assert body == {"success": False, "message": message}
    elif name == "calcom":
        assert set(body) == {"status", "timestamp", "path", "error"}
        assert body["status"] == "error"
        assert body["error"]["message"] == message
        assert body["error"]["code"].endswith("Exception")
    else:
        assert body == {
            "status_code": response.status_code,
            "message": message,
            "error": message.lower().replace(" ", "_"),
        }
