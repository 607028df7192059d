"""The operator's tool against the local stack's Secrets Manager emulator and DynamoDB Local, with
the relay answering through the API emulator: what the tool writes changes what the relay accepts."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from local.seed import JOTFORM_DEMO, SECRETS_PREFIX, TYPEFORM_DEMO, DemoFormSource
from local.stack import Stack, start_stack
from relay.callers import links
from relay.callers.registry import parse_registry
from tests.helpers import FORM, ZAPIER, future, new_key
from tests.integration.test_form_intake import filled, signed_request

# The relay re-reads secrets this often here, so a change shows without a restart.
SECRET_CACHE_SECONDS = 1


@pytest.fixture(scope="module")
def ops_stack() -> Iterator[Stack]:
    with start_stack(
        api_port=0,
        workers=2,
        extra_env={
            "SECRETS_MAX_AGE_SECONDS": str(SECRET_CACHE_SECONDS),
            "REGISTRY_MAX_AGE_SECONDS": str(SECRET_CACHE_SECONDS),
        },
    ) as stack:
        yield stack


def relayctl(stack: Stack, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    # Exactly what `.local/stack.json` says points boto3 and the tool at the stack.
    env = os.environ | stack.describe()["aws"]["env"]
    return subprocess.run(  # noqa: S603 - our own tool, arguments from the test
        [sys.executable, "-m", "relayctl", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def lookup_status(stack: Stack, key: str) -> int:
    """401 for a key the relay does not accept; 404 (an unknown id) for one it does."""
    assert stack.api is not None
    url = f"{stack.api.url}/v1/reschedules/{uuid.uuid4()}"
    return httpx.get(url, headers={"authorization": f"Bearer {key}"}, timeout=30).status_code


def registry_now(stack: Stack) -> dict[str, Any]:
    secret = stack.client("secretsmanager").get_secret_value(
        SecretId=f"{SECRETS_PREFIX}/sources", VersionStage="AWSCURRENT"
    )
    value: dict[str, Any] = json.loads(secret["SecretString"])
    return value


def wait_for_cache() -> None:
    time.sleep(SECRET_CACHE_SECONDS + 0.5)


def test_add_rotate_retire_and_revoke_change_what_the_relay_accepts(ops_stack: Stack) -> None:
    # Given a new API-key source made by the tool
    added = relayctl(
        ops_stack, "sources", "add", "ops-zap", "--kind", "api_key", "--allow", "iclosed:default", "--json"
    )
    assert added.returncode == 0, added.stderr
    first_key = json.loads(added.stdout)["api_key"]
    stored = json.dumps(registry_now(ops_stack))
    assert first_key not in stored  # only its hash is kept
    wait_for_cache()
    assert lookup_status(ops_stack, first_key) == 404

    # When it is rotated, both keys work; once the old one is retired, only the new one does
    rotated = relayctl(ops_stack, "sources", "rotate", "ops-zap", "--json")
    second_key = json.loads(rotated.stdout)["api_key"]
    wait_for_cache()
    assert (lookup_status(ops_stack, first_key), lookup_status(ops_stack, second_key)) == (404, 404)
    assert relayctl(ops_stack, "sources", "retire", "ops-zap").returncode == 0
    wait_for_cache()
    assert (lookup_status(ops_stack, first_key), lookup_status(ops_stack, second_key)) == (401, 404)

    # And once revoked, nothing of it works
    assert relayctl(ops_stack, "sources", "revoke", "ops-zap").returncode == 0
    wait_for_cache()
    assert lookup_status(ops_stack, second_key) == 401
    listed = json.loads(relayctl(ops_stack, "sources", "list", "--json").stdout)
    assert "ops-zap" not in {row["name"] for row in listed}


def test_a_broken_registry_is_refused_before_it_is_written(ops_stack: Stack) -> None:
    before = registry_now(ops_stack)
    broken = relayctl(
        ops_stack,
        *("sources", "add", "ops-form", "--kind", "signed_link", "--allow", "novacal:default"),
        *("--origin", "https://Shop.Example.test/path", "--form-url", "https://shop.example.test/r"),
    )
    assert broken.returncode == 1
    assert broken.stderr.count("\n") == 1  # one line saying what to fix
    assert "origins" in broken.stderr
    assert registry_now(ops_stack) == before


def test_two_concurrent_writers_both_land(ops_stack: Stack) -> None:
    names = [f"ops-writer-{n}" for n in range(4)]
    with ThreadPoolExecutor(len(names)) as pool:
        results = list(
            pool.map(
                lambda name: relayctl(
                    ops_stack, "sources", "add", name, "--kind", "api_key", "--allow", "novacal:default"
                ),
                names,
            )
        )
    assert [r.returncode for r in results] == [0] * len(names), [r.stderr for r in results]
    assert set(names) <= set(registry_now(ops_stack)["sources"])
    parse_registry(registry_now(ops_stack))  # still a registry the relay accepts


def test_a_minted_link_verifies_with_the_deployed_link_secret(ops_stack: Stack) -> None:
    booking = ops_stack.sandboxes["novacal"].bookings[0]
    minted = relayctl(ops_stack, "links", "mint", "form-demo", "novacal", booking, "--json")
    assert minted.returncode == 0, minted.stderr
    fields = json.loads(minted.stdout)
    fields.pop("url")
    admitted = links.verify(parse_registry(registry_now(ops_stack)), fields, now=time.time())
    assert (admitted.caller.name, admitted.booking_id) == ("form-demo", booking)
    refused = relayctl(ops_stack, "links", "mint", "zapier-demo", "novacal", booking)
    assert refused.returncode == 1
    assert "not a signed_link source" in refused.stderr


def test_history_lists_a_bookings_attempts_newest_first(ops_stack: Stack) -> None:
    assert ops_stack.api is not None
    url = f"{ops_stack.api.url}/v1/reschedules"
    auth = {"authorization": f"Bearer {ZAPIER.api_key}"}
    ids = []
    for days in (40, 41):
        body = {"provider": "iclosed", "id": 1005, "start": future(days=days), "timezone": "UTC"}
        answer = httpx.post(url, json=body, headers=auth | {"idempotency-key": new_key()}, timeout=30)
        assert answer.status_code == 200, answer.text
        ids.append(answer.json()["reschedule_id"])
    shown = relayctl(ops_stack, "history", "iclosed", "1005", "--json")
    assert shown.returncode == 0, shown.stderr
    assert [row["reschedule_id"] for row in json.loads(shown.stdout)][:2] == ids[::-1]
    one = json.loads(relayctl(ops_stack, "attempt", ids[0], "--json").stdout)
    assert (one["status"], one["source"]) == ("succeeded", ZAPIER.name)
    assert relayctl(ops_stack, "attempt", str(uuid.uuid4())).returncode == 1


def test_a_provider_credential_is_stored_in_its_adapters_shape_from_stdin(ops_stack: Stack) -> None:
    stored = relayctl(ops_stack, "accounts", "put", "novacal", "eu", stdin="sandbox-novacal-token-eu\n")
    assert stored.returncode == 0, stored.stderr
    assert "sandbox-novacal-token-eu" not in stored.stdout + stored.stderr  # never printed back
    secret = ops_stack.client("secretsmanager").get_secret_value(
        SecretId=f"{SECRETS_PREFIX}/providers/novacal/eu"
    )
    assert json.loads(secret["SecretString"]) == {"api_key": "sandbox-novacal-token-eu"}
    missing = relayctl(ops_stack, "accounts", "put", "novacal", "eu", stdin='{"token": "sandbox-x"}')
    assert missing.returncode == 1
    assert "api_key" in missing.stderr


def test_every_command_has_help() -> None:
    for command in (
        [],
        ["sources"],
        ["sources", "add"],
        ["accounts", "put"],
        ["links", "mint"],
        ["history"],
        ["attempt"],
        ["failures"],
        ["queue", "status"],
        ["queue", "redrive"],
        ["smoke"],
    ):
        shown = subprocess.run(  # noqa: S603 - our own tool, fixed arguments
            [sys.executable, "-m", "relayctl", *command, "--help"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert shown.returncode == 0, (command, shown.stderr)
        assert "usage: relayctl" in shown.stdout


def test_smoke_passes_against_a_working_stack_and_moves_nothing(ops_stack: Stack) -> None:
    assert ops_stack.api is not None
    iclosed = ops_stack.sandboxes["iclosed"]
    httpx.delete(f"{iclosed.url}/_sandbox/calls").raise_for_status()
    started = time.monotonic()
    passed = relayctl(ops_stack, "smoke", "--api-url", ops_stack.api.url, stdin=ZAPIER.api_key + "\n")
    assert passed.returncode == 0, passed.stderr
    assert time.monotonic() - started < 10
    assert httpx.get(f"{iclosed.url}/_sandbox/calls").json() == []  # a dry run calls no provider


def test_smoke_fails_with_one_line_when_the_stack_does_not_answer_as_it_should(ops_stack: Stack) -> None:
    assert ops_stack.api is not None
    wrong_key = relayctl(ops_stack, "smoke", "--api-url", ops_stack.api.url, stdin="sandbox-not-a-key\n")
    assert wrong_key.returncode == 1
    assert wrong_key.stderr.count("\n") == 1
    assert "dry_run reschedule: expected 200, got 401" in wrong_key.stderr
    nobody = relayctl(ops_stack, "smoke", "--api-url", "http://127.0.0.1:9", stdin=ZAPIER.api_key + "\n")
    assert nobody.returncode == 1
    assert "could not be reached" in nobody.stderr


def test_the_first_source_replaces_the_templates_placeholder_registry(ops_stack: Stack) -> None:
    # As template.yaml creates it: {"sources": {}} plus a generated placeholder key
    client = ops_stack.client("secretsmanager")
    client.create_secret(Name="ops-new/sources", SecretString='{"sources": {}, "placeholder": "sandbox-x"}')
    added = relayctl(
        ops_stack,
        "--prefix",
        "ops-new",
        "sources",
        "add",
        "zap",
        "--kind",
        "api_key",
        "--allow",
        "iclosed:default",
    )
    assert added.returncode == 0, added.stderr
    value = json.loads(
        client.get_secret_value(SecretId="ops-new/sources", VersionStage="AWSCURRENT")["SecretString"]
    )
    assert set(value) == {"sources"}
    parse_registry(value)


def test_a_callback_set_by_the_tool_receives_the_sources_outcomes(ops_stack: Stack) -> None:
    assert ops_stack.api is not None
    assert ops_stack.callback_sink is not None
    sink = ops_stack.callback_sink
    added = relayctl(
        ops_stack, "--json", "sources", "add", "ops-hooked", "--kind", "api_key", "--allow", "novacal:default"
    )
    assert added.returncode == 0, added.stderr
    key = json.loads(added.stdout)["api_key"]
    refused = relayctl(ops_stack, "sources", "set", "ops-hooked", "--callback-url", "http://example.test/h")
    assert refused.returncode == 2
    assert "https" in refused.stderr
    hook = sink.hook_url("ops-hooked")
    done = relayctl(ops_stack, "--json", "sources", "set", "ops-hooked", "--callback-url", hook)
    assert done.returncode == 0, done.stderr
    secret = json.loads(done.stdout)["callback_secret"]
    assert secret.startswith("whsec_")
    assert registry_now(ops_stack)["sources"]["ops-hooked"]["callback"] == {"url": hook, "secrets": [secret]}
    wait_for_cache()
    booking = ops_stack.sandboxes["novacal"].bookings[2]
    answer = httpx.post(
        f"{ops_stack.api.url}/v1/reschedules",
        json={"provider": "novacal", "booking_id": booking, "start": future(days=300) + "Z"},
        headers={"authorization": f"Bearer {key}", "idempotency-key": new_key()},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    deadline = time.monotonic() + 20
    while not (received := [d for d in sink.deliveries if d["path"] == "/hooks/ops-hooked"]):
        assert time.monotonic() < deadline, "no callback arrived"
        time.sleep(0.2)
    event = Webhook(secret).verify(received[0]["body"], received[0]["headers"])
    assert event["data"]["reschedule_id"] == answer.json()["reschedule_id"]


def test_smoke_never_takes_the_key_from_argv_and_reads_it_from_the_environment(ops_stack: Stack) -> None:
    assert ops_stack.api is not None
    on_argv = relayctl(ops_stack, "smoke", "--api-url", ops_stack.api.url, "--api-key", ZAPIER.api_key)
    assert on_argv.returncode == 2
    assert "RELAY_API_KEY" in on_argv.stderr
    assert ZAPIER.api_key not in on_argv.stderr + on_argv.stdout
    env = os.environ | ops_stack.describe()["aws"]["env"] | {"RELAY_API_KEY": ZAPIER.api_key}
    from_env = subprocess.run(  # noqa: S603 - our own tool, arguments from the test
        [sys.executable, "-m", "relayctl", "smoke", "--api-url", ops_stack.api.url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert from_env.returncode == 0, from_env.stderr


def test_callback_urls_to_internal_addresses_are_refused_at_registry_write(ops_stack: Stack) -> None:
    added = relayctl(
        ops_stack, "sources", "add", "ops-internal", "--kind", "api_key", "--allow", "novacal:default"
    )
    assert added.returncode == 0, added.stderr
    for url in (
        "https://10.0.0.8/hooks",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::ffff:192.168.1.1]/hooks",
        "https://100.64.0.9/hooks",
        "https://user:sandbox-password@hooks.example.test/x",
    ):
        refused = relayctl(ops_stack, "sources", "set", "ops-internal", "--callback-url", url)
        assert refused.returncode == 2, url
        assert "refused" in refused.stderr
        assert "sandbox-password" not in refused.stderr
    assert "callback" not in registry_now(ops_stack)["sources"]["ops-internal"]
    # The stack's loopback sink is allowed only by its setting: off, it is refused too.
    assert ops_stack.callback_sink is not None
    hook = ops_stack.callback_sink.hook_url("ops-internal")
    env = os.environ | ops_stack.describe()["aws"]["env"] | {"CALLBACK_ALLOW_HTTP_LOOPBACK": "false"}
    refused_sink = subprocess.run(  # noqa: S603 - our own tool, arguments from the test
        [sys.executable, "-m", "relayctl", "sources", "set", "ops-internal", "--callback-url", hook],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused_sink.returncode == 2
    assert "loopback" in refused_sink.stderr


def test_event_subscriptions_are_turned_on_and_off_per_api_key_source(ops_stack: Stack) -> None:
    assert ops_stack.api is not None
    api = ops_stack.api.url
    added = relayctl(
        ops_stack, "--json", "sources", "add", "ops-zap", "--kind", "api_key", "--allow", "novacal:default"
    )
    assert added.returncode == 0, added.stderr
    key = json.loads(added.stdout)["api_key"]
    headers = {"authorization": f"Bearer {key}"}
    subscribe = {"url": "https://hooks.example.test/zap"}

    def post() -> httpx.Response:
        return httpx.post(f"{api}/v1/subscriptions", json=subscribe, headers=headers, timeout=30)

    wait_for_cache()
    assert post().status_code == 403
    on = relayctl(ops_stack, "sources", "set", "ops-zap", "--subscriptions")
    assert on.returncode == 0, on.stderr
    assert registry_now(ops_stack)["sources"]["ops-zap"]["subscriptions"] is True
    wait_for_cache()
    created = post()
    assert created.status_code == 201, created.text
    off = relayctl(ops_stack, "sources", "set", "ops-zap", "--no-subscriptions")
    assert off.returncode == 0, off.stderr
    assert registry_now(ops_stack)["sources"]["ops-zap"]["subscriptions"] is False
    wait_for_cache()
    assert post().status_code == 403
    # What it has stays its own to delete.
    sub_id = created.json()["id"]
    gone = httpx.delete(f"{api}/v1/subscriptions/{sub_id}", headers=headers, timeout=30)
    assert gone.status_code == 204
    # Only API-key sources subscribe.
    refused = relayctl(ops_stack, "sources", "set", "signing-demo", "--subscriptions")
    assert refused.returncode == 2
    assert "api_key" in refused.stderr


def _form_source_args(name: str, kind: str, source: DemoFormSource, api: str) -> list[str]:
    maps = [arg for field, expression in source.mapping.items() for arg in ("--map", f"{field}={expression}")]
    consts = [arg for field, value in source.constants.items() for arg in ("--const", f"{field}={value}")]
    return [
        "sources",
        "add",
        name,
        "--kind",
        kind,
        "--allow",
        "novacal:default",
        *maps,
        *consts,
        "--api-url",
        api,
    ]


def test_a_form_tool_source_added_by_the_tool_moves_a_booking(ops_stack: Stack) -> None:
    assert ops_stack.api is not None
    api = ops_stack.api.url
    secret = "sandbox-ops-typeform-secret-01"
    # Given a Typeform source made by the tool, its secret given on stdin (never in argv)
    added = relayctl(
        ops_stack,
        *_form_source_args("ops-typeform", "typeform", TYPEFORM_DEMO, api),
        "--json",
        stdin=secret + "\n",
    )
    assert added.returncode == 0, added.stderr
    shown = json.loads(added.stdout)
    assert shown == {
        "name": "ops-typeform",
        "kind": "typeform",
        "intake_url": f"{api}/v1/intake/ops-typeform",
        "intake_token": None,
    }
    entry = registry_now(ops_stack)["sources"]["ops-typeform"]
    assert entry["mapping"] == TYPEFORM_DEMO.mapping
    assert entry["signing_secrets"] == [secret]
    wait_for_cache()
    # When Typeform delivers a submission signed with that secret
    source = replace(TYPEFORM_DEMO, name="ops-typeform", secret=secret)
    booking = ops_stack.sandboxes["novacal"].bookings[1]
    start = future(days=170, hour=11)
    body, headers = signed_request(
        source, filled("typeform", booking=booking, start=start, delivery_id=new_key())
    )
    answer = httpx.post(shown["intake_url"], content=body, headers=headers, timeout=30)
    # Then the booking moves
    assert answer.status_code == 200, answer.text
    assert answer.json()["start"].startswith(start[:16])


def test_an_unsigned_form_tool_gets_a_url_token_shown_once_and_stored_hashed(ops_stack: Stack) -> None:
    assert ops_stack.api is not None
    added = relayctl(
        ops_stack, *_form_source_args("ops-jotform", "jotform", JOTFORM_DEMO, ops_stack.api.url), "--json"
    )
    assert added.returncode == 0, added.stderr
    shown = json.loads(added.stdout)
    token = shown["intake_token"]
    assert shown["intake_url"] == f"{ops_stack.api.url}/v1/intake/ops-jotform/{token}"
    stored = json.dumps(registry_now(ops_stack))
    assert token not in stored
    assert hashlib.sha256(token.encode()).hexdigest() in stored
    wait_for_cache()
    source = replace(JOTFORM_DEMO, name="ops-jotform", secret=token)
    booking = ops_stack.sandboxes["novacal"].bookings[2]
    payload = filled("jotform", booking=booking, start=future(days=171, hour=12), delivery_id=new_key())
    body, headers = signed_request(source, payload)
    answer = httpx.post(shown["intake_url"], content=body, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text


def test_a_form_mapping_is_validated_before_the_registry_is_written(ops_stack: Stack) -> None:
    before = registry_now(ops_stack)
    base = ["sources", "add", "ops-bad-form", "--kind", "fillout", "--allow", "novacal:default"]
    bad_expression = relayctl(ops_stack, *base, "--map", "booking_id=submission.[[")
    assert bad_expression.returncode == 1
    assert "mapping.booking_id" in bad_expression.stderr
    assert "not a JMESPath expression" in bad_expression.stderr
    unknown_field = relayctl(ops_stack, *base, "--map", "booking_id=a", "--map", "colour=b")
    assert unknown_field.returncode == 1
    assert "not a canonical field" in unknown_field.stderr
    no_booking = relayctl(ops_stack, *base, "--map", "date=a")
    assert (no_booking.returncode, "map booking_id" in no_booking.stderr) == (1, True)
    # A signed kind without its secret on stdin asks for it and stops: nothing is written
    no_secret = relayctl(
        ops_stack,
        "sources",
        "add",
        "ops-tally",
        "--kind",
        "tally",
        "--allow",
        "novacal:default",
        "--map",
        "booking_id=a",
    )
    assert no_secret.returncode == 2
    assert "signing secret" in no_secret.stderr
    assert registry_now(ops_stack) == before


def test_a_minted_link_has_its_hosted_page_url(ops_stack: Stack) -> None:
    assert ops_stack.api is not None
    booking = ops_stack.sandboxes["novacal"].bookings[3]
    minted = relayctl(
        ops_stack, "links", "mint", FORM.name, "novacal", booking, "--api-url", ops_stack.api.url, "--json"
    )
    assert minted.returncode == 0, minted.stderr
    hosted = json.loads(minted.stdout)["hosted_url"]
    assert hosted.startswith(f"{ops_stack.api.url}/v1/pages/reschedule?source={FORM.name}&provider=novacal")
    page = httpx.get(hosted, timeout=30)
    assert page.status_code == 200
    assert 'id="reschedule"' in page.text
