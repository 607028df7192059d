"""The local stack runs every sandbox, lists it in stack.json, and seeds secrets the sandbox accepts."""

from __future__ import annotations

import json
from typing import Any

from local.sandbox import PROVIDERS
from local.seed import SECRETS_PREFIX
from local.stack import Stack
from tests.local.sandbox.helpers import HTTP, basic


def test_stack_json_lists_every_provider_with_url_and_bookings(stack: Stack) -> None:
    providers = stack.describe()["providers"]
    assert set(providers) == set(PROVIDERS)
    for name, info in providers.items():
        assert info["url"] == stack.sandboxes[name].url
        assert len(info["bookings"]) == 5, name
        assert HTTP.get(f"{info['url']}/_sandbox/stats").status_code == 200


def test_seeded_default_secrets_are_what_the_sandboxes_accept(stack: Stack) -> None:
    client = stack.client("secretsmanager")

    def secret(provider: str) -> dict[str, Any]:
        value = client.get_secret_value(SecretId=f"{SECRETS_PREFIX}/providers/{provider}/default")
        parsed: dict[str, Any] = json.loads(value["SecretString"])
        return parsed

    calcom, acuity = secret("calcom"), secret("acuity")
    # The demo default accounts are seeded unpaced (rate_per_minute 0), beside their credentials.
    assert set(calcom) == {"api_key", "rate_per_minute"}
    assert calcom["rate_per_minute"] == 0
    assert calcom["api_key"].startswith("cal_")
    assert set(acuity) == {"user_id", "api_key", "rate_per_minute"}

    calcom_box, acuity_box = stack.sandboxes["calcom"], stack.sandboxes["acuity"]
    uid = calcom_box.bookings[0]
    headers = {"Authorization": f"Bearer {calcom['api_key']}", "cal-api-version": "2024-08-13"}
    assert HTTP.get(f"{calcom_box.url}/v2/bookings/{uid}", headers=headers).status_code == 200
    # Acuity's Basic credential is the two values of its secret; a wrong key is refused
    url = f"{acuity_box.url}/api/v1/appointments/999999/reschedule"
    good = {"Authorization": basic(f"{acuity['user_id']}:{acuity['api_key']}")}
    assert HTTP.put(url, json={}, headers=good).status_code == 404  # authenticated, unknown id
    bad = {"Authorization": basic(f"{acuity['user_id']}:sandbox-wrong")}
    assert HTTP.put(url, json={}, headers=bad).status_code == 401
    for sandbox in (calcom_box, acuity_box):
        HTTP.delete(f"{sandbox.url}/_sandbox/calls")
