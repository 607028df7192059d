"""template.yaml: runtime settings, environment, least-privilege IAM, tables, queues and the worker."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from local.queues import queue_attributes, queue_properties
from local.tables import TTL_ATTRIBUTE_KEY, table_definitions
from local.template import function_environment, function_timeout_seconds, load_template
from relay.settings import Settings

EXPECTED_ENVIRONMENT = {
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
    "IDEMPOTENCY_TABLE_NAME",
    "RESCHEDULES_TABLE_NAME",
    "SECRETS_PREFIX",
    "ICLOSED_BASE_URL",
    "NOVACAL_BASE_URL",
    "CALCOM_BASE_URL",
    "CALCOM_API_VERSION",
    "ACUITY_BASE_URL",
    "DEFAULT_DURATION_MINUTES",
    "RECORD_RETENTION_DAYS",
    "DELIVERY_QUEUE_URL",
    "DEAD_LETTER_QUEUE_URL",
    "DELIVERY_MAX_AGE_SECONDS",
    "DELIVERY_MIN_LEAD_SECONDS",
    "CALLBACK_QUEUE_URL",
}
# The callback function's environment: the registry, the callbacks' state and its own queues.
EXPECTED_CALLBACK_ENVIRONMENT = {
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
    "IDEMPOTENCY_TABLE_NAME",
    "RESCHEDULES_TABLE_NAME",
    "SECRETS_PREFIX",
    "CALLBACK_QUEUE_URL",
    "CALLBACK_DEAD_LETTER_QUEUE_URL",
}
SECRET_LOOKING_NAME = re.compile(r"TOKEN|SECRET(?!S_PREFIX)|PASSWORD|API_KEY|PRIVATE", re.IGNORECASE)
SECRETS_ARN = (
    "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${SecretsPrefix}/*"
)
# The callback function reads the registry only (Secrets Manager appends "-" and 6 characters).
REGISTRY_ARN = SECRETS_ARN.removesuffix("/*") + "/sources-??????"
SECRETS_ARNS = {
    "RescheduleFunction": SECRETS_ARN,
    "WorkerFunction": SECRETS_ARN,
    "CallbackFunction": REGISTRY_ARN,
}
REPO = Path(__file__).resolve().parents[2]
RECORDS_DAL = REPO / "functions" / "reschedule" / "relay" / "dal" / "records.py"

FUNCTIONS = ("RescheduleFunction", "WorkerFunction", "CallbackFunction")
# What the HTTP function may do in DynamoDB: the one place to change when the relay's calls change
# (e.g. one TransactWriteItems over both tables needs PutItem/UpdateItem/ConditionCheckItem per table).
ALLOWED_DYNAMODB_ACTIONS: dict[str, set[str]] = {
    # Powertools' DynamoDBPersistenceLayer: get, conditional put, update, delete of one lock item.
    "IdempotencyTable": {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
    },
    # relay/dal/records.py: conditional put of each attempt, get by id; relay/dal/ledger.py: a
    # cancel notes its stop on a record with a provider call under way.
    "ReschedulesTable": {"dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem"},
    # relay/dal/records.py: a booking's history.
    "ReschedulesTable/index/ByBooking": {"dynamodb:Query"},
    # relay/dal/records.py: a source's recent outcomes (GET /v1/reschedules: the HTTP door only).
    "ReschedulesTable/index/BySource": {"dynamodb:Query"},
}
# The worker also locks the record it delivers (relay/dal/ledger.py: update_item); it lists nothing.
ALLOWED_WORKER_DYNAMODB_ACTIONS = {
    k: v for k, v in ALLOWED_DYNAMODB_ACTIONS.items() if k != "ReschedulesTable/index/BySource"
} | {"ReschedulesTable": ALLOWED_DYNAMODB_ACTIONS["ReschedulesTable"] | {"dynamodb:UpdateItem"}}
# The callback function: the callbacks' and subscriptions' items in the idempotency table
# (relay/dal/callbacks.py, relay/dal/subscriptions.py).
ALLOWED_CALLBACK_DYNAMODB_ACTIONS = {
    "IdempotencyTable": {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}
}
LEDGER_DAL = REPO / "functions" / "reschedule" / "relay" / "dal" / "ledger.py"
# A TransactWriteItems item needs the IAM action of its kind on its table.
TRANSACT_ITEM_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}
# The HTTP door only queues; the worker (and its event source mapping) consumes, re-times and parks.
CONSUME_ACTIONS = {
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
}
ALLOWED_SQS_ACTIONS: dict[str, dict[str, set[str]]] = {
    "RescheduleFunction": {"DeliveryQueue": {"sqs:SendMessage"}, "CallbackQueue": {"sqs:SendMessage"}},
    "CallbackFunction": {
        # A failed POST's retry is a fresh delayed copy.
        "CallbackQueue": CONSUME_ACTIONS | {"sqs:SendMessage"},
        "CallbackDeadLetterQueue": {"sqs:SendMessage"},
    },
    "WorkerFunction": {
        "CallbackQueue": {"sqs:SendMessage"},
        "DeliveryQueue": {
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:ChangeMessageVisibility",
            "sqs:GetQueueAttributes",
            "sqs:SendMessage",  # a fresh, delayed copy past SQS's visibility cap or receive limit
        },
        "DeliveryDeadLetterQueue": {"sqs:SendMessage"},
    },
}
QUEUES = ("DeliveryQueue", "DeliveryDeadLetterQueue", "CallbackQueue", "CallbackDeadLetterQueue")
QUEUE_RESOURCES = {name: {"Fn::GetAtt": [name, "Arn"]} for name in QUEUES}
# AWS guidance for an SQS event source: visibility timeout at least 6x the function's timeout.
VISIBILITY_TO_TIMEOUT_RATIO = 6
# SQS's bounds on an event source mapping's MaximumConcurrency, and on a batch without a window.
MAXIMUM_CONCURRENCY_RANGE = (2, 1000)
SQS_BATCH_WITHOUT_WINDOW = 10
# How template.yaml names each of those resources in a policy.
DYNAMODB_RESOURCES: dict[str, Any] = {
    "IdempotencyTable": {"Fn::GetAtt": ["IdempotencyTable", "Arn"]},
    "ReschedulesTable": {"Fn::GetAtt": ["ReschedulesTable", "Arn"]},
    "ReschedulesTable/index/ByBooking": {"Fn::Sub": "${ReschedulesTable.Arn}/index/ByBooking"},
    "ReschedulesTable/index/BySource": {"Fn::Sub": "${ReschedulesTable.Arn}/index/BySource"},
}
# boto3 client method in relay/dal/records.py -> (resource key above, IAM action it needs).
BOTO3_CALL_ACTIONS = {
    "put_item": ("ReschedulesTable", "dynamodb:PutItem"),
    "get_item": ("ReschedulesTable", "dynamodb:GetItem"),
    "update_item": ("ReschedulesTable", "dynamodb:UpdateItem"),
    "delete_item": ("ReschedulesTable", "dynamodb:DeleteItem"),
    "query": ("ReschedulesTable/index/ByBooking", "dynamodb:Query"),
}
# "*" as a resource only where AWS accepts nothing narrower: X-Ray has no resource-level permissions.
WILDCARD_RESOURCE_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
FUNCTION_LOG_ACTIONS = {"logs:CreateLogStream", "logs:PutLogEvents"}
API_GATEWAY_TIMEOUT_SECONDS = 30


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    resources: dict[str, Any] = template["Resources"]
    return resources


@pytest.fixture(scope="module", params=FUNCTIONS)
def function(request: pytest.FixtureRequest) -> str:
    """Each function in turn: the IAM checks hold for both roles."""
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def role(resources: dict[str, Any], function: str) -> dict[str, Any]:
    role: dict[str, Any] = resources[f"{function}Role"]["Properties"]
    return role


@pytest.fixture(scope="module")
def statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [statement for policy in role["Policies"] for statement in policy["PolicyDocument"]["Statement"]]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements_on(statements: list[dict[str, Any]], resource: Any) -> list[dict[str, Any]]:
    return [s for s in statements if resource in _as_list(s["Resource"])]


def _actions(statements: list[dict[str, Any]]) -> set[str]:
    return {action for statement in statements for action in _as_list(statement["Action"])}


def _key(expression: Any) -> str:
    return repr(expression)


def test_function_runtime_settings(template: dict[str, Any]) -> None:
    function_globals = template["Globals"]["Function"]

    assert function_globals["Runtime"] == "python3.13"
    assert function_globals["Architectures"] == ["arm64"]
    assert function_globals["Tracing"] == "Active"
    # API Gateway gives up at 30 s; the function must finish (and answer) before that.
    assert function_timeout_seconds(template) < 30


def test_layer_matches_function_runtime(resources: dict[str, Any]) -> None:
    layer = resources["DependenciesLayer"]

    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    assert layer["Metadata"]["BuildArchitecture"] == "arm64"
    assert resources["RescheduleFunction"]["Properties"]["Layers"] == [{"Ref": "DependenciesLayer"}]


def test_routes(resources: dict[str, Any]) -> None:
    events = resources["RescheduleFunction"]["Properties"]["Events"].values()

    routes = {(e["Properties"]["Method"], e["Properties"]["Path"]) for e in events}
    assert routes == {
        ("POST", "/v1/reschedules"),
        ("GET", "/v1/reschedules/{reschedule_id}"),
        ("GET", "/v1/bookings/{provider}/{booking_id}/reschedules"),
        ("DELETE", "/v1/reschedules/{reschedule_id}"),
        ("OPTIONS", "/v1/reschedules"),
        ("GET", "/v1/reschedules"),
        ("GET", "/v1/me"),
        ("POST", "/v1/subscriptions"),
        ("GET", "/v1/subscriptions"),
        ("DELETE", "/v1/subscriptions/{subscription_id}"),
        ("POST", "/v1/intake/{source}"),
        ("POST", "/v1/intake/{source}/{token}"),
        ("GET", "/v1/pages/reschedule"),
        ("GET", "/v1/pages/reschedule/result"),
    }
    for event in events:
        assert event["Type"] == "HttpApi"
        assert event["Properties"]["ApiId"] == {"Ref": "HttpApi"}
        assert event["Properties"]["PayloadFormatVersion"] == "2.0"


def test_api_has_no_static_cors(resources: dict[str, Any]) -> None:
    # Preflight is answered by the function from per-source allowlists, never a blanket "*".
    assert "CorsConfiguration" not in resources["HttpApi"]["Properties"]


def test_environment_names_are_exactly_the_documented_ones(template: dict[str, Any]) -> None:
    assert set(function_environment(template)) == EXPECTED_ENVIRONMENT


def test_environment_holds_no_secret_values(template: dict[str, Any]) -> None:
    for name, value in function_environment(template).items():
        assert not SECRET_LOOKING_NAME.search(name), name
        if isinstance(value, dict):
            # Only references to parameters/resources (names), never a secret dynamic reference.
            assert set(value) <= {"Ref", "Fn::GetAtt", "Fn::Sub"}, (name, value)
            assert "resolve:secretsmanager" not in str(value), name
        else:
            assert isinstance(value, str), name
            assert len(value) < 40, (name, value)  # names and numbers, not keys or tokens
            assert "resolve:" not in value, name


def test_each_function_has_its_own_role_written_out_in_the_template(
    template: dict[str, Any], resources: dict[str, Any], role: dict[str, Any], function: str
) -> None:
    properties = resources[function]["Properties"]

    # Our own role: SAM generates none (its default attaches AWSLambdaBasicExecutionRole, logs on "*").
    assert properties["Role"] == {"Fn::GetAtt": [f"{function}Role", "Arn"]}
    assert "Policies" not in properties
    assert "Policies" not in template["Globals"]["Function"]
    iam_types = {r["Type"] for r in resources.values() if r["Type"].startswith("AWS::IAM::")}
    assert iam_types == {"AWS::IAM::Role"}
    roles = [name for name, r in resources.items() if r["Type"] == "AWS::IAM::Role"]
    assert sorted(roles) == sorted(f"{name}Role" for name in FUNCTIONS)
    # Inline statements only: no managed policies, nothing granted from elsewhere.
    assert set(role) <= {"Description", "AssumeRolePolicyDocument", "Policies"}
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ]


def test_statements_allow_named_actions_only(statements: list[dict[str, Any]]) -> None:
    for statement in statements:
        # No NotAction / NotResource: each grant names what it allows.
        assert set(statement) <= {"Sid", "Effect", "Action", "Resource"}, statement
        assert statement["Effect"] == "Allow"
        assert all("*" not in action for action in _as_list(statement["Action"])), statement


def test_dynamodb_access_is_exactly_the_allowed_actions(
    statements: list[dict[str, Any]], function: str
) -> None:
    granted: dict[str, set[str]] = {}
    known = {_key(expression): name for name, expression in DYNAMODB_RESOURCES.items()}
    for statement in statements:
        actions = {a for a in _as_list(statement["Action"]) if a.startswith("dynamodb:")}
        if not actions:
            continue
        # A DynamoDB statement grants nothing else.
        assert actions == set(_as_list(statement["Action"])), statement
        for resource in _as_list(statement["Resource"]):
            assert _key(resource) in known, f"DynamoDB access on an unexpected resource: {resource}"
            granted.setdefault(known[_key(resource)], set()).update(actions)

    expected = {
        "RescheduleFunction": ALLOWED_DYNAMODB_ACTIONS,
        "WorkerFunction": ALLOWED_WORKER_DYNAMODB_ACTIONS,
        "CallbackFunction": ALLOWED_CALLBACK_DYNAMODB_ACTIONS,
    }
    assert granted == expected[function]


def test_sqs_access_is_exactly_the_allowed_actions(statements: list[dict[str, Any]], function: str) -> None:
    granted: dict[str, set[str]] = {}
    known = {_key(expression): name for name, expression in QUEUE_RESOURCES.items()}
    for statement in statements:
        actions = {a for a in _as_list(statement["Action"]) if a.startswith("sqs:")}
        if not actions:
            continue
        assert actions == set(_as_list(statement["Action"])), statement
        for resource in _as_list(statement["Resource"]):
            assert _key(resource) in known, f"SQS access on an unexpected resource: {resource}"
            granted.setdefault(known[_key(resource)], set()).update(actions)

    assert granted == ALLOWED_SQS_ACTIONS[function]


def test_the_worker_role_grants_every_call_the_ledger_makes() -> None:
    # Every boto3 call (and transaction item kind) in relay/dal/ledger.py, granted to the worker.
    tree = ast.parse(LEDGER_DAL.read_text(encoding="utf-8"))
    calls = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "_client"
    }
    kinds = {
        key.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Dict)
        for key in node.keys
        if isinstance(key, ast.Constant) and key.value in TRANSACT_ITEM_ACTIONS
    }
    single = {
        "update_item": "dynamodb:UpdateItem",
        "put_item": "dynamodb:PutItem",
        "get_item": "dynamodb:GetItem",
        "delete_item": "dynamodb:DeleteItem",
    }

    assert calls <= set(single) | {"transact_write_items"}, calls
    # Its single-item calls and its transactions span the attempt records and the idempotency items.
    granted = set().union(*ALLOWED_WORKER_DYNAMODB_ACTIONS.values())
    assert {single[call] for call in calls if call in single} <= granted
    assert {TRANSACT_ITEM_ACTIONS[kind] for kind in kinds} <= granted


def test_the_http_function_can_only_queue(resources: dict[str, Any]) -> None:
    role = resources["RescheduleFunctionRole"]["Properties"]
    statements = [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]

    sqs_actions = {a for a in _actions(statements) if a.startswith("sqs:")}
    assert sqs_actions == {"sqs:SendMessage"}
    assert not _statements_on(statements, QUEUE_RESOURCES["DeliveryDeadLetterQueue"])


def test_the_records_dal_makes_exactly_the_allowed_calls() -> None:
    # Every boto3 call in relay/dal/records.py needs its action granted, and nothing more is granted.
    calls = {
        node.func.attr
        for node in ast.walk(ast.parse(RECORDS_DAL.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Attribute)
        and node.func.value.attr == "_client"
    }
    unknown = calls - set(BOTO3_CALL_ACTIONS)
    assert not unknown, f"map {sorted(unknown)} to IAM actions in BOTO3_CALL_ACTIONS"

    needed: dict[str, set[str]] = {}
    for call in calls:
        resource, action = BOTO3_CALL_ACTIONS[call]
        needed.setdefault(resource, set()).add(action)
    if "query" in calls:  # records.py queries both of the table's indexes
        needed.setdefault("ReschedulesTable/index/BySource", set()).add("dynamodb:Query")
    expected = {k: set(v) for k, v in ALLOWED_DYNAMODB_ACTIONS.items() if k != "IdempotencyTable"}
    # The ledger's update of a record (a cancel's stop note; tests/unit/test_grants.py ties it).
    expected["ReschedulesTable"] -= {"dynamodb:UpdateItem"}
    assert needed == expected


def test_secrets_access_is_get_value_under_the_prefix(
    statements: list[dict[str, Any]], function: str
) -> None:
    secrets_statements = [
        s for s in statements if any(a.startswith("secretsmanager:") for a in _as_list(s["Action"]))
    ]

    assert _actions(secrets_statements) == {"secretsmanager:GetSecretValue"}
    assert [s["Resource"] for s in secrets_statements] == [{"Fn::Sub": SECRETS_ARNS[function]}]


def test_logs_go_to_the_functions_own_log_group(
    resources: dict[str, Any], statements: list[dict[str, Any]], function: str
) -> None:
    properties = resources[function]["Properties"]
    log_statements = [s for s in statements if any(a.startswith("logs:") for a in _as_list(s["Action"]))]

    assert properties["LoggingConfig"] == {"LogGroup": {"Ref": f"{function}LogGroup"}}
    assert _actions(log_statements) == FUNCTION_LOG_ACTIONS  # the group exists: no logs:CreateLogGroup
    assert [s["Resource"] for s in log_statements] == [{"Fn::GetAtt": [f"{function}LogGroup", "Arn"]}]
    assert resources[f"{function}LogGroup"]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_wildcard_resources_only_where_aws_allows_nothing_narrower(statements: list[dict[str, Any]]) -> None:
    for statement in statements:
        resources = _as_list(statement["Resource"])
        assert all(not (isinstance(r, str) and "*" in r and r != "*") for r in resources), statement
        if "*" in resources:
            assert set(_as_list(statement["Action"])) <= WILDCARD_RESOURCE_ACTIONS, statement
    wildcard = [s for s in statements if "*" in _as_list(s["Resource"])]
    assert _actions(wildcard) == WILDCARD_RESOURCE_ACTIONS


def test_wildcard_statements_say_why_in_the_template() -> None:
    # Each Resource: "*" carries a one-line comment right above its statement.
    lines = (REPO / "template.yaml").read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if line.strip() == 'Resource: "*"':
            sid_line = max(i for i in range(number) if lines[i].strip().startswith("- Sid:"))
            assert lines[sid_line - 1].strip().startswith("#"), f"template.yaml:{number + 1} needs a comment"


def test_only_the_expected_services_are_granted(statements: list[dict[str, Any]]) -> None:
    services = {action.split(":")[0] for action in _actions(statements)}

    assert services == {"dynamodb", "secretsmanager", "xray", "logs", "sqs"}


def test_reserved_concurrency_is_optional(template: dict[str, Any], resources: dict[str, Any]) -> None:
    parameter = template["Parameters"]["ReservedConcurrency"]

    # New accounts (10 concurrent executions) cannot reserve any: the default reserves none.
    assert parameter["Default"] == 0
    assert parameter["MinValue"] == 0
    # 0 must mean "unset", never ReservedConcurrentExecutions: 0 (which throttles every call).
    assert template["Conditions"]["HasReservedConcurrency"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ReservedConcurrency"}, 0]}]
    }
    assert resources["RescheduleFunction"]["Properties"]["ReservedConcurrentExecutions"] == {
        "Fn::If": ["HasReservedConcurrency", {"Ref": "ReservedConcurrency"}, {"Ref": "AWS::NoValue"}]
    }


def test_powertools_settings_match_the_alarms(template: dict[str, Any], resources: dict[str, Any]) -> None:
    environment = function_environment(template)
    alarm = resources["ProviderFailuresAlarm"]["Properties"]

    assert environment["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}
    # The alarm watches the metric the relay emits: same namespace, same service dimension.
    assert alarm["Namespace"] == environment["POWERTOOLS_METRICS_NAMESPACE"] == "RescheduleRelay"
    assert alarm["Dimensions"] == [{"Name": "service", "Value": environment["POWERTOOLS_SERVICE_NAME"]}]


def test_duration_alarm_fires_before_the_timeout(template: dict[str, Any], resources: dict[str, Any]) -> None:
    alarm = resources["FunctionDurationAlarm"]["Properties"]
    timeout_ms = function_timeout_seconds(template) * 1000

    assert alarm["ExtendedStatistic"] == "p99"
    assert 0.5 * timeout_ms <= alarm["Threshold"] < timeout_ms


def test_api_is_throttled_logged_and_published(template: dict[str, Any], resources: dict[str, Any]) -> None:
    api = resources["HttpApi"]["Properties"]

    assert resources["HttpApi"]["Type"] == "AWS::Serverless::HttpApi"
    assert api["DefaultRouteSettings"] == {
        "ThrottlingBurstLimit": {"Ref": "ThrottlingBurstLimit"},
        "ThrottlingRateLimit": {"Ref": "ThrottlingRateLimit"},
    }
    for log_group in ("ApiAccessLogGroup", "RescheduleFunctionLogGroup"):
        assert resources[log_group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert "${HttpApi}" in template["Outputs"]["ApiUrl"]["Value"]["Fn::Sub"]
    assert function_timeout_seconds(template) < API_GATEWAY_TIMEOUT_SECONDS


def test_sources_secret_is_created_with_a_generated_placeholder(resources: dict[str, Any]) -> None:
    secret = resources["SourcesSecret"]["Properties"]

    assert secret["Name"] == {"Fn::Sub": "${SecretsPrefix}/sources"}
    assert "SecretString" not in secret  # no value in the template: generated, then put by the operator
    assert "GenerateSecretString" in secret


def test_every_checkov_skip_gives_a_one_line_reason(resources: dict[str, Any]) -> None:
    skips = [
        (name, skip)
        for name, resource in resources.items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]

    assert skips
    for name, skip in skips:
        assert re.fullmatch(r"CKV_AWS_\d+", skip["id"]), (name, skip)
        assert skip["comment"].strip(), (name, skip)
        assert "\n" not in skip["comment"].strip(), (name, skip)


def test_layer_is_built_by_the_packager(resources: dict[str, Any]) -> None:
    metadata = resources["DependenciesLayer"]["Metadata"]
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")

    # sam build runs the root Makefile's target, which runs tools/package.py (the same layer as make package).
    assert metadata == {"BuildMethod": "makefile", "BuildArchitecture": "arm64", "ContextPath": "."}
    assert re.search(r"^build-DependenciesLayer:\n\t.*-m tools\.package --layer-dir", makefile, re.MULTILINE)


@pytest.mark.parametrize("table", ["IdempotencyTable", "ReschedulesTable"])
def test_tables_are_on_demand_encrypted_recoverable_and_expiring(
    resources: dict[str, Any], table: str
) -> None:
    properties = resources[table]["Properties"]

    assert resources[table]["Type"] == "AWS::DynamoDB::Table"
    assert "TableName" not in properties  # names come from the stack, so stacks can coexist
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["SSESpecification"]["SSEEnabled"] is True
    assert properties["TimeToLiveSpecification"]["Enabled"] is True
    assert properties["DeletionProtectionEnabled"] == {"Ref": "TableDeletionProtection"}


def test_table_keys(resources: dict[str, Any]) -> None:
    idempotency = resources["IdempotencyTable"]["Properties"]
    reschedules = resources["ReschedulesTable"]["Properties"]

    # Powertools' idempotency schema.
    assert idempotency["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert idempotency["TimeToLiveSpecification"]["AttributeName"] == "expiration"
    assert reschedules["KeySchema"] == [{"AttributeName": "reschedule_id", "KeyType": "HASH"}]
    assert reschedules["TimeToLiveSpecification"]["AttributeName"] == "expires_at"
    by_booking, by_source = reschedules["GlobalSecondaryIndexes"]
    assert by_booking["IndexName"] == "ByBooking"
    assert by_booking["KeySchema"] == [
        {"AttributeName": "booking_key", "KeyType": "HASH"},
        {"AttributeName": "attempted_at", "KeyType": "RANGE"},
    ]
    assert by_booking["Projection"] == {"ProjectionType": "ALL"}
    assert by_source["IndexName"] == "BySource"
    assert by_source["KeySchema"] == [
        {"AttributeName": "source", "KeyType": "HASH"},
        {"AttributeName": "attempted_at", "KeyType": "RANGE"},
    ]
    assert by_source["Projection"] == {"ProjectionType": "ALL"}


def test_alarms_notify_only_when_a_topic_is_given(resources: dict[str, Any]) -> None:
    alarms = {name: r["Properties"] for name, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}

    metrics = {(alarm["Namespace"], alarm["MetricName"]) for alarm in alarms.values()}
    assert metrics >= {
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        ("AWS/Lambda", "Duration"),
        ("AWS/ApiGateway", "5xx"),
        ("RescheduleRelay", "ProviderFailures"),
    }
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == {
            "Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]
        }


def test_short_tags_become_long_form_intrinsics(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]

    assert outputs["FunctionName"]["Value"] == {"Ref": "RescheduleFunction"}
    assert template["Conditions"]["HasAlarmTopic"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]
    }
    access_log = template["Resources"]["HttpApi"]["Properties"]["AccessLogSettings"]
    assert access_log["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}


def test_loader_turns_every_short_tag_into_its_long_form(tmp_path: Path) -> None:
    # Given a template using the short tags in their scalar, sequence and mapping forms
    path = tmp_path / "template.yaml"
    path.write_text(
        "Resources:\n"
        "  R:\n"
        "    Properties:\n"
        "      Attr: !GetAtt Table.StreamSpecification.StreamArn\n"
        "      AttrList: !GetAtt [Table, Arn]\n"
        "      Sub: !Sub ['${A}-x', {A: !Ref B}]\n"
        "      Pick: !If [Cond, !Select [0, !Split [',', !Ref L]], !Ref AWS::NoValue]\n"
        "      Joined: !Join ['', [!FindInMap [M, K, V], !Base64 x]]\n"
        "      Check: !Condition Cond\n"
        "      Version: 2012-10-17\n",
        encoding="utf-8",
    )

    # When it is loaded
    properties = load_template(path)["Resources"]["R"]["Properties"]

    # Then CloudFormation's long forms come out, and dates stay strings
    assert properties["Attr"] == {"Fn::GetAtt": ["Table", "StreamSpecification.StreamArn"]}
    assert properties["AttrList"] == {"Fn::GetAtt": ["Table", "Arn"]}
    assert properties["Sub"] == {"Fn::Sub": ["${A}-x", {"A": {"Ref": "B"}}]}
    assert properties["Pick"] == {
        "Fn::If": ["Cond", {"Fn::Select": [0, {"Fn::Split": [",", {"Ref": "L"}]}]}, {"Ref": "AWS::NoValue"}]
    }
    assert properties["Joined"] == {
        "Fn::Join": ["", [{"Fn::FindInMap": ["M", "K", "V"]}, {"Fn::Base64": "x"}]]
    }
    assert properties["Check"] == {"Condition": "Cond"}
    assert properties["Version"] == "2012-10-17"


def test_loader_rejects_unsafe_tags(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text("Resources: !!python/object/apply:os.system ['true']\n", encoding="utf-8")

    with pytest.raises(yaml.constructor.ConstructorError):
        load_template(path)


def test_table_definitions_come_from_the_template(template: dict[str, Any]) -> None:
    definitions = table_definitions(template)

    assert set(definitions) == {"IdempotencyTable", "ReschedulesTable"}
    assert definitions["IdempotencyTable"] == {
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
        TTL_ATTRIBUTE_KEY: "expiration",
    }
    reschedules = definitions["ReschedulesTable"]
    assert reschedules[TTL_ATTRIBUTE_KEY] == "expires_at"
    assert (
        reschedules["GlobalSecondaryIndexes"]
        == (template["Resources"]["ReschedulesTable"]["Properties"]["GlobalSecondaryIndexes"])
    )
    assert "ProvisionedThroughput" not in reschedules


def test_every_documented_operation_is_routed_by_the_gateway(resources: dict[str, Any]) -> None:
    # A route the function serves but API Gateway does not route answers the gateway's own 404.
    events = resources["RescheduleFunction"]["Properties"]["Events"].values()
    routed = {(e["Properties"]["Method"], e["Properties"]["Path"]) for e in events}
    document = json.loads((Path(__file__).resolve().parents[2] / "openapi.json").read_text())
    documented = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    assert documented <= routed


# ---- Durable delivery: queues, the worker, its event source mapping --------------------------


def _worker_timeout(template: dict[str, Any]) -> int:
    own = template["Resources"]["WorkerFunction"]["Properties"].get("Timeout")
    return int(own if own is not None else template["Globals"]["Function"]["Timeout"])


def _deliveries_event(resources: dict[str, Any]) -> dict[str, Any]:
    (event,) = resources["WorkerFunction"]["Properties"]["Events"].values()
    assert event["Type"] == "SQS"
    properties: dict[str, Any] = event["Properties"]
    return properties


def test_the_worker_runs_the_same_code_and_layer_as_the_http_function(resources: dict[str, Any]) -> None:
    http = resources["RescheduleFunction"]["Properties"]
    worker = resources["WorkerFunction"]["Properties"]

    assert resources["WorkerFunction"]["Type"] == "AWS::Serverless::Function"
    assert worker["Handler"] == "worker.lambda_handler"
    assert worker["CodeUri"] == http["CodeUri"] == "functions/reschedule/"
    assert worker["Layers"] == http["Layers"] == [{"Ref": "DependenciesLayer"}]
    # Its own log group, apart from the HTTP function's.
    assert worker["LoggingConfig"]["LogGroup"] != http["LoggingConfig"]["LogGroup"]


def test_the_worker_is_built_like_the_http_function(resources: dict[str, Any]) -> None:
    def build(name: str) -> dict[str, Any]:
        return {k: v for k, v in resources[name]["Metadata"].items() if k != "checkov"}

    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    targets = {name: re.search(rf"^build-{name}:\n\t(.*)$", makefile, re.MULTILINE) for name in FUNCTIONS}

    assert build("WorkerFunction") == build("RescheduleFunction") == build("CallbackFunction")
    assert build("WorkerFunction")["BuildMethod"] == "makefile"
    http_target, *other_targets = (targets[name] for name in FUNCTIONS)
    assert http_target
    for target in other_targets:
        assert target
        assert target.group(1) == http_target.group(1)  # one tree, three handlers


def test_both_functions_have_the_same_settings(resources: dict[str, Any]) -> None:
    http = resources["RescheduleFunction"]["Properties"]["Environment"]["Variables"]
    worker = resources["WorkerFunction"]["Properties"]["Environment"]["Variables"]

    assert worker == http
    assert set(worker) == EXPECTED_ENVIRONMENT


def test_both_functions_know_the_queues_and_the_maximum_age(template: dict[str, Any]) -> None:
    environment = function_environment(template)
    max_age = template["Parameters"]["DeliveryMaxAgeSeconds"]

    assert environment["DELIVERY_QUEUE_URL"] == {"Ref": "DeliveryQueue"}  # Ref of a queue is its URL
    assert environment["DEAD_LETTER_QUEUE_URL"] == {"Ref": "DeliveryDeadLetterQueue"}
    assert environment["DELIVERY_MAX_AGE_SECONDS"] == {"Ref": "DeliveryMaxAgeSeconds"}
    assert environment["DELIVERY_MIN_LEAD_SECONDS"] == {"Ref": "DeliveryMinLeadSeconds"}
    assert (
        template["Parameters"]["DeliveryMinLeadSeconds"]["Default"]
        == Settings.model_fields["delivery_min_lead_seconds"].default
    )
    assert max_age["Type"] == "Number"
    assert max_age["Default"] == 86400


@pytest.mark.parametrize("queue", QUEUES)
def test_queues_are_encrypted_and_keep_messages_past_the_maximum_age(
    template: dict[str, Any], resources: dict[str, Any], queue: str
) -> None:
    properties = resources[queue]["Properties"]

    assert resources[queue]["Type"] == "AWS::SQS::Queue"
    assert "QueueName" not in properties  # names come from the stack, so stacks can coexist
    assert properties["SqsManagedSseEnabled"] is True
    # SQS deletes a message at its retention period, counted from the first send (also in the DLQ):
    # a message still being retried must never go, and a parked one must stay for the operator.
    max_age = template["Parameters"]["DeliveryMaxAgeSeconds"]["MaxValue"]
    assert properties["MessageRetentionPeriod"] > max_age


def test_the_queue_redrives_to_the_dead_letter_queue(resources: dict[str, Any]) -> None:
    redrive = resources["DeliveryQueue"]["Properties"]["RedrivePolicy"]

    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["DeliveryDeadLetterQueue", "Arn"]}
    assert isinstance(redrive["maxReceiveCount"], int)
    # One receive per attempt: the default 24 h schedule (about 30 attempts) must fit under it.
    assert redrive["maxReceiveCount"] > 30
    assert "RedrivePolicy" not in resources["DeliveryDeadLetterQueue"]["Properties"]


def test_the_visibility_timeout_is_at_least_six_times_the_worker_timeout(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    visibility = resources["DeliveryQueue"]["Properties"]["VisibilityTimeout"]
    window = _deliveries_event(resources).get("MaximumBatchingWindowInSeconds", 0)

    assert visibility >= VISIBILITY_TO_TIMEOUT_RATIO * _worker_timeout(template) + window


def test_the_worker_consumes_the_queue_with_partial_batch_failures(resources: dict[str, Any]) -> None:
    event = _deliveries_event(resources)

    assert event["Queue"] == {"Fn::GetAtt": ["DeliveryQueue", "Arn"]}
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert 1 <= event["BatchSize"] <= SQS_BATCH_WITHOUT_WINDOW
    low, high = MAXIMUM_CONCURRENCY_RANGE
    assert low <= event["ScalingConfig"]["MaximumConcurrency"] <= high
    assert event.get("Enabled", True) is True


def test_the_worker_timeout_leaves_room_for_a_whole_provider_call(template: dict[str, Any]) -> None:
    # A delivery takes at most the HTTP function's budget; the worker has more, for a batch.
    assert _worker_timeout(template) > function_timeout_seconds(template)


def test_queue_alarms_watch_the_dead_letter_queue_and_the_oldest_message(resources: dict[str, Any]) -> None:
    alarms = {name: r["Properties"] for name, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    watched = {
        (alarm["MetricName"], alarm["Dimensions"][0]["Value"]["Fn::GetAtt"][0])
        for alarm in alarms.values()
        if alarm["Namespace"] == "AWS/SQS"
    }

    assert watched == {
        ("ApproximateNumberOfMessagesVisible", "DeliveryDeadLetterQueue"),
        ("ApproximateAgeOfOldestMessage", "DeliveryQueue"),
        ("ApproximateNumberOfMessagesVisible", "CallbackDeadLetterQueue"),
    }
    depth = alarms["DeadLetterQueueDepthAlarm"]
    assert depth["Threshold"] == 1  # one undeliverable reschedule is one too many
    assert depth["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["DeliveryDeadLetterQueue", "QueueName"]}}
    ]
    assert alarms["DeliveryQueueAgeAlarm"]["Threshold"] == {"Ref": "QueueAgeAlarmSeconds"}


def test_local_queue_attributes_come_from_the_template(template: dict[str, Any]) -> None:
    properties = queue_properties(template)
    arns = {"DeliveryDeadLetterQueue": "arn:aws:sqs:us-east-1:123456789012:local-dlq"}

    attributes = queue_attributes("DeliveryQueue", properties["DeliveryQueue"], arns)

    template_queue = template["Resources"]["DeliveryQueue"]["Properties"]
    assert attributes["VisibilityTimeout"] == str(template_queue["VisibilityTimeout"])
    assert attributes["MessageRetentionPeriod"] == str(template_queue["MessageRetentionPeriod"])
    assert attributes["SqsManagedSseEnabled"] == "true"
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": arns["DeliveryDeadLetterQueue"],
        "maxReceiveCount": template_queue["RedrivePolicy"]["maxReceiveCount"],
    }


# ---- Outcome callbacks: their own queue and function -------------------------------------------


def _callbacks_event(resources: dict[str, Any]) -> dict[str, Any]:
    (event,) = resources["CallbackFunction"]["Properties"]["Events"].values()
    assert event["Type"] == "SQS"
    properties: dict[str, Any] = event["Properties"]
    return properties


def test_the_callback_function_runs_the_same_code_with_only_what_callbacks_need(
    resources: dict[str, Any],
) -> None:
    http = resources["RescheduleFunction"]["Properties"]
    callbacks = resources["CallbackFunction"]["Properties"]

    assert callbacks["Handler"] == "callbacks_worker.lambda_handler"
    assert (REPO / "functions" / "reschedule" / "callbacks_worker.py").is_file()
    assert callbacks["CodeUri"] == http["CodeUri"]
    assert callbacks["Layers"] == http["Layers"]
    assert set(callbacks["Environment"]["Variables"]) == EXPECTED_CALLBACK_ENVIRONMENT
    assert callbacks["Environment"]["Variables"]["CALLBACK_QUEUE_URL"] == {"Ref": "CallbackQueue"}
    assert callbacks["Environment"]["Variables"]["CALLBACK_DEAD_LETTER_QUEUE_URL"] == {
        "Ref": "CallbackDeadLetterQueue"
    }
    # Both doors queue outcome events on the callback queue, never on the delivery queue.
    assert http["Environment"]["Variables"]["CALLBACK_QUEUE_URL"] == {"Ref": "CallbackQueue"}


def test_the_callback_function_takes_one_event_at_a_time_from_its_own_queue(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    from relay.settings import MAX_CALLBACK_TIMEOUT_SECONDS, Settings  # noqa: PLC0415 - read here only

    event = _callbacks_event(resources)
    timeout = resources["CallbackFunction"]["Properties"]["Timeout"]
    queue = resources["CallbackQueue"]["Properties"]
    defaults = Settings.model_fields

    assert event["Queue"] == {"Fn::GetAtt": ["CallbackQueue", "Arn"]}
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # One event per invocation: a slow receiver never holds another source's event in its batch.
    assert event["BatchSize"] == 1
    concurrency = event["ScalingConfig"]["MaximumConcurrency"]
    low, high = MAXIMUM_CONCURRENCY_RANGE
    assert low <= concurrency <= high
    # One source's slow receiver holds at most its slots: some workers are always left for the others.
    assert defaults["callback_source_concurrency"].default < concurrency
    # The longest POST the setting allows, and the claim and settle around it, fit in an invocation.
    assert timeout >= MAX_CALLBACK_TIMEOUT_SECONDS + 10
    assert defaults["callback_timeout_seconds"].default <= MAX_CALLBACK_TIMEOUT_SECONDS
    assert queue["VisibilityTimeout"] >= VISIBILITY_TO_TIMEOUT_RATIO * timeout
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["CallbackDeadLetterQueue", "Arn"]}
    assert "RedrivePolicy" not in resources["CallbackDeadLetterQueue"]["Properties"]


def test_callback_alarms_watch_the_dead_letter_queue_and_the_functions_errors(
    resources: dict[str, Any],
) -> None:
    depth = resources["CallbackDeadLetterQueueDepthAlarm"]["Properties"]
    errors = resources["CallbackFunctionErrorsAlarm"]["Properties"]

    assert depth["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["CallbackDeadLetterQueue", "QueueName"]}}
    ]
    assert depth["Threshold"] == 1
    assert (errors["Namespace"], errors["MetricName"]) == ("AWS/Lambda", "Errors")
    assert errors["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "CallbackFunction"}}]
