"""Every AWS call the relay's code makes is granted to the function that makes it, on the resource it
makes it on, and every grant is one a call needs (least privilege, both ways).

The calls are read from the code: each relay/dal/ module's boto3 operations (the service from its
`mypy_boto3_<service>` import, the operation names from botocore's own service model), whether
called, passed on (`self._client.update_item`) or named (`self._call("send_message", ...)`), and
the item kinds of its transactions. `USES` says which function makes which call on which resource:
a call in the code that no function's `USES` names fails here, and so does a `USES` entry the
template does not grant, or a grant no entry needs.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore import xform_name

from local.template import load_template

REPO = Path(__file__).resolve().parents[2]
DAL = REPO / "functions" / "reschedule" / "relay" / "dal"
IAM_PREFIX = {"dynamodb": "dynamodb", "sqs": "sqs", "secretsmanager": "secretsmanager"}
# A transaction's items each need the IAM action of their kind on their table.
TRANSACT_ITEM_ACTIONS = {
    "Put": "put_item",
    "Update": "update_item",
    "Delete": "delete_item",
    "ConditionCheck": "condition_check_item",
}
TRANSACT = "transact_write_items"
# Calls a library makes for a module (no name of them in the module's own text).
INDIRECT_CALLS = {
    # Powertools' SecretsProvider.get.
    "secrets.py": {"get_secret_value"},
}
# Made by Lambda's event source mapping with the consuming function's role, not by our code.
EVENT_SOURCE_ACTIONS = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
# Granted on "*" for the Lambda runtime and tracer, and logs on the function's own group.
RUNTIME_SERVICES = {"logs", "xray"}

TABLE = "IdempotencyTable"
RECORDS = "ReschedulesTable"
HISTORY = "ReschedulesTable/index/ByBooking"
BY_SOURCE = "ReschedulesTable/index/BySource"
SECRETS = "secret:${SecretsPrefix}/*"
REGISTRY = "secret:${SecretsPrefix}/sources-??????"

# function -> (dal module, boto3 call) -> the resources it makes that call on.
_HTTP_AND_WORKER: dict[tuple[str, str], set[str]] = {
    ("records.py", "put_item"): {RECORDS},
    ("records.py", "get_item"): {RECORDS},
    ("records.py", "query"): {HISTORY},
    # The ledger: the idempotency item, alone or with the attempt record in one transaction.
    ("ledger.py", "get_item"): {TABLE},
    ("ledger.py", "put_item"): {TABLE},
    ("ledger.py", "delete_item"): {TABLE},
    ("ledger.py", "transact:Update"): {TABLE},
    ("ledger.py", "transact:Delete"): {TABLE},
    ("ledger.py", "transact:Put"): {TABLE, RECORDS},
    ("pacing.py", "update_item"): {TABLE},
    # A cancel that finds a provider call under way notes the stop on the attempt record (the HTTP
    # door); the worker's lock, guard and progress (below).
    ("ledger.py", "update_item"): {RECORDS},
    ("secrets.py", "get_secret_value"): {SECRETS},
    # Outcome events are queued on the callback queue by both doors.
    ("queue.py", "send_message"): {"DeliveryQueue", "CallbackQueue"},
    # A final outcome reads its source's subscriptions; a 410 (sent in place) deletes one.
    ("subscriptions.py", "get_item"): {TABLE},
    ("subscriptions.py", "update_item"): {TABLE},
}
USES: dict[str, dict[tuple[str, str], set[str]]] = {
    "RescheduleFunction": _HTTP_AND_WORKER
    | {
        # GET /v1/reschedules: a source's recent outcomes, by its own index.
        ("records.py", "query"): {HISTORY, BY_SOURCE},
        # History cursors (the HTTP door's history pages), items in the idempotency table.
        ("cursors.py", "put_item"): {TABLE},
        ("cursors.py", "get_item"): {TABLE},
        # Quota counters (the HTTP door counts; the worker's ledger writes give backlog places back).
        ("quotas.py", "transact:Update"): {TABLE},
        ("quotas.py", "update_item"): {TABLE},
    },
    "WorkerFunction": _HTTP_AND_WORKER
    | {
        ("queue.py", "send_message"): {"DeliveryQueue", "DeliveryDeadLetterQueue", "CallbackQueue"},
        ("queue.py", "change_message_visibility"): {"DeliveryQueue"},
        ("ledger.py", "put_item"): {TABLE, RECORDS},
        # The circuit per provider account (only queued deliveries consult it).
        ("circuits.py", "get_item"): {TABLE},
        ("circuits.py", "update_item"): {TABLE},
        ("circuits.py", "delete_item"): {TABLE},
        # The worker's cancel and the callbacks it still sends in place for an old deployment.
        ("callbacks.py", "get_item"): {TABLE},
        ("callbacks.py", "put_item"): {TABLE},
        ("callbacks.py", "update_item"): {TABLE},
    },
    "CallbackFunction": {
        ("queue.py", "send_message"): {"CallbackQueue", "CallbackDeadLetterQueue"},
        ("queue.py", "change_message_visibility"): {"CallbackQueue"},
        ("callbacks.py", "get_item"): {TABLE},
        ("callbacks.py", "put_item"): {TABLE},
        ("callbacks.py", "update_item"): {TABLE},
        # A subscription's target at each attempt; a 410 deletes it.
        ("subscriptions.py", "get_item"): {TABLE},
        ("subscriptions.py", "update_item"): {TABLE},
        ("secrets.py", "get_secret_value"): {REGISTRY},
    },
}
# The queue each function consumes through its event source mapping.
CONSUMES = {"WorkerFunction": "DeliveryQueue", "CallbackFunction": "CallbackQueue"}


@cache
def _operations(service: str) -> frozenset[str]:
    model = botocore.session.get_session().get_service_model(service)
    return frozenset(xform_name(name) for name in model.operation_names)


def _service(tree: ast.Module) -> str | None:
    services = {
        node.module.split(".")[0].removeprefix("mypy_boto3_")
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mypy_boto3_")
    }
    assert len(services) <= 1, services
    return next(iter(services), None)


@cache
def dal_calls() -> dict[str, set[str]]:
    """Per dal module: the boto3 operations its text names, and `transact:<Kind>` per item kind."""
    found: dict[str, set[str]] = {}
    for path in sorted(DAL.glob("*.py")):
        if path.name == "clients.py":  # makes the clients, calls nothing on them
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        service = _service(tree)
        if service is None:
            continue
        operations = _operations(service)
        names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)} | {
            n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
        }
        calls = (names & operations) | INDIRECT_CALLS.get(path.name, set())
        if TRANSACT in calls:
            calls.discard(TRANSACT)
            calls |= {f"transact:{kind}" for kind in TRANSACT_ITEM_ACTIONS if kind in names}
        found[path.name] = {f"{service}:{call}" for call in calls}
    return found


def _action(module: str, call: str) -> str:
    """The IAM action of one call: `<service>:<Operation>` (a transaction item: its kind's action)."""
    (service,) = {entry.split(":", 1)[0] for entry in dal_calls()[module] if entry.split(":", 1)[1] == call}
    operation = TRANSACT_ITEM_ACTIONS[call.split(":")[1]] if call.startswith("transact:") else call
    camel = "".join(part.capitalize() for part in operation.split("_"))
    return f"{IAM_PREFIX[service]}:{camel}"


def _resource_key(resource: Any) -> str:
    """A statement's resource as USES names it."""
    if resource == "*":
        return "*"
    if isinstance(resource, dict) and "Fn::GetAtt" in resource:
        return str(resource["Fn::GetAtt"][0])
    if isinstance(resource, dict) and "Fn::Sub" in resource:
        text = str(resource["Fn::Sub"])
        if text == "${ReschedulesTable.Arn}/index/ByBooking":
            return HISTORY
        if text == "${ReschedulesTable.Arn}/index/BySource":
            return BY_SOURCE
        secret = re.search(r"(secret:.*)$", text)
        if secret:
            return secret.group(1)
    raise AssertionError(f"a resource this test cannot name: {resource!r}")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def granted(function: str) -> set[tuple[str, str]]:
    """(action, resource) pairs the function's role allows."""
    role = load_template()["Resources"][f"{function}Role"]["Properties"]
    pairs = set()
    for policy in role["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = (
                statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            )
            pairs |= {(action, _resource_key(resource)) for action in actions for resource in resources}
    return pairs


def needed(function: str) -> set[tuple[str, str]]:
    pairs = {
        (_action(module, call), resource)
        for (module, call), resources in USES[function].items()
        for resource in resources
    }
    if function in CONSUMES:
        pairs |= {(action, CONSUMES[function]) for action in EVENT_SOURCE_ACTIONS}
    return pairs


def test_every_aws_call_in_the_dal_is_made_by_some_function() -> None:
    # A new call (or transaction item kind) in relay/dal/ must be placed in USES, hence granted.
    in_code = {(module, call.split(":", 1)[1]) for module, calls in dal_calls().items() for call in calls}
    named = {entry for uses in USES.values() for entry in uses}
    assert in_code - named == set(), "add these calls to USES (and grant them in template.yaml)"
    assert named - in_code == set(), "USES names calls the code no longer makes"


def test_the_scan_finds_calls_however_they_are_written() -> None:
    calls = dal_calls()
    assert "sqs:send_message" in calls["queue.py"]  # named in a string: self._call("send_message", ...)
    assert "dynamodb:update_item" in calls["ledger.py"]  # passed on: self._write(self._client.update_item)
    assert "dynamodb:transact:Put" in calls["ledger.py"]
    assert "dynamodb:query" in calls["records.py"]


@pytest.mark.parametrize("function", sorted(USES))
def test_each_function_is_granted_exactly_the_calls_it_makes(function: str) -> None:
    allowed = {pair for pair in granted(function) if pair[0].split(":")[0] not in RUNTIME_SERVICES}
    need = needed(function)
    assert need - allowed == set(), f"{function} makes calls template.yaml does not grant"
    assert allowed - need == set(), f"{function} is granted what it never calls"
