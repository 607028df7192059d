"""openapi.json is generated from the handler's routes: the committed file must be current."""

from __future__ import annotations

import json
import subprocess
import sys

from tools.openapi import OPENAPI_PATH, REPO_ROOT


def test_committed_openapi_document_is_current() -> None:
    # In a child process: generating imports the handler module with placeholder settings, which
    # must not become the module the in-process tests use.
    rendered = subprocess.run(
        [sys.executable, "-c", "from tools.openapi import render; print(render(), end='')"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert OPENAPI_PATH.read_text() == rendered, "run: .venv/bin/python -m tools.openapi"


def test_document_lists_every_route_and_problem_answer() -> None:
    doc = json.loads(OPENAPI_PATH.read_text())
    post = doc["paths"]["/v1/reschedules"]["post"]
    assert set(post["requestBody"]["content"]) == {
        "application/json",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    }
    assert post["requestBody"]["content"]["application/json"]["schema"]["additionalProperties"] is False
    for status in ("400", "401", "403", "404", "409", "413", "415", "422", "429", "502", "503", "504"):
        assert "application/problem+json" in post["responses"][status]["content"]
    assert "get" in doc["paths"]["/v1/reschedules/{reschedule_id}"]


def test_the_subscription_me_and_outcome_routes_are_documented_with_their_problems() -> None:
    doc = json.loads(OPENAPI_PATH.read_text())
    paths, schemas = doc["paths"], doc["components"]["schemas"]
    created = paths["/v1/subscriptions"]["post"]
    assert created["requestBody"]["content"]["application/json"]["schema"]["additionalProperties"] is False
    assert set(created["requestBody"]["content"]["application/json"]["schema"]["properties"]) == {
        "url",
        "events",
    }
    # The secret is in the 201 answer only, never in a listing.
    assert created["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "CreatedSubscription"
    )
    assert "secret" in schemas["CreatedSubscription"]["properties"]
    assert "secret" not in schemas["Subscription"]["properties"]
    for status in ("400", "401", "409", "413", "422", "503"):
        assert "application/problem+json" in created["responses"][status]["content"], status
    listed = paths["/v1/subscriptions"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert listed["$ref"].endswith("SubscriptionList")
    deleted = paths["/v1/subscriptions/{subscription_id}"]["delete"]["responses"]
    assert "204" in deleted
    assert "application/problem+json" in deleted["404"]["content"]
    assert "application/problem+json" in paths["/v1/me"]["get"]["responses"]["401"]["content"]
    assert "application/problem+json" in paths["/v1/reschedules"]["get"]["responses"]["422"]["content"]
