"""template.yaml: runtime settings, environment, least-privilege IAM and table hygiene."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from local.tables import TTL_ATTRIBUTE_KEY, table_definitions
from local.template import function_environment, function_timeout_seconds, load_template

EXPECTED_ENVIRONMENT = {
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
    "IDEMPOTENCY_TABLE_NAME",
    "RESCHEDULES_TABLE_NAME",
    "SECRETS_PREFIX",
    "ICLOSED_BASE_URL",
    "NOVACAL_BASE_URL",
    "DEFAULT_DURATION_MINUTES",
    "RECORD_RETENTION_DAYS",
}
SECRET_LOOKING_NAME = re.compile(r"TOKEN|SECRET(?!S_PREFIX)|PASSWORD|API_KEY|PRIVATE", re.IGNORECASE)
SECRETS_ARN = (
    "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${SecretsPrefix}/*"
)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    resources: dict[str, Any] = template["Resources"]
    return resources


@pytest.fixture(scope="module")
def statements(resources: dict[str, Any]) -> list[dict[str, Any]]:
    policies = resources["RescheduleFunction"]["Properties"]["Policies"]
    # Inline policy documents only: no SAM policy templates, no managed policy names.
    assert all(isinstance(policy, dict) and "Statement" in policy for policy in policies)
    return [statement for policy in policies for statement in policy["Statement"]]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements_on(statements: list[dict[str, Any]], resource: Any) -> list[dict[str, Any]]:
    return [s for s in statements if resource in _as_list(s["Resource"])]


def _actions(statements: list[dict[str, Any]]) -> set[str]:
    return {action for statement in statements for action in _as_list(statement["Action"])}


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
    assert layer["Metadata"]["BuildMethod"] == "python3.13"
    assert resources["RescheduleFunction"]["Properties"]["Layers"] == [{"Ref": "DependenciesLayer"}]


def test_routes(resources: dict[str, Any]) -> None:
    events = resources["RescheduleFunction"]["Properties"]["Events"].values()

    routes = {(e["Properties"]["Method"], e["Properties"]["Path"]) for e in events}
    assert routes == {
        ("POST", "/v1/reschedules"),
        ("GET", "/v1/reschedules/{reschedule_id}"),
        ("OPTIONS", "/v1/reschedules"),
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


def test_idempotency_table_access_is_exactly_item_crud(statements: list[dict[str, Any]]) -> None:
    on_table = _statements_on(statements, {"Fn::GetAtt": ["IdempotencyTable", "Arn"]})

    assert _actions(on_table) == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
    }


def test_reschedules_table_access_is_write_read_and_index_query(statements: list[dict[str, Any]]) -> None:
    on_table = _statements_on(statements, {"Fn::GetAtt": ["ReschedulesTable", "Arn"]})
    on_index = _statements_on(statements, {"Fn::Sub": "${ReschedulesTable.Arn}/index/ByBooking"})

    assert _actions(on_table) == {"dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem"}
    assert _actions(on_index) == {"dynamodb:Query"}


def test_secrets_access_is_get_value_under_the_prefix(statements: list[dict[str, Any]]) -> None:
    secrets_statements = [
        s for s in statements if any(a.startswith("secretsmanager:") for a in _as_list(s["Action"]))
    ]

    assert _actions(secrets_statements) == {"secretsmanager:GetSecretValue"}
    assert [s["Resource"] for s in secrets_statements] == [{"Fn::Sub": SECRETS_ARN}]


def test_no_wildcards_beyond_xray(statements: list[dict[str, Any]]) -> None:
    for statement in statements:
        assert statement["Effect"] == "Allow"
        actions = _as_list(statement["Action"])
        assert all(not action.endswith(":*") and action != "*" for action in actions), actions
        if "*" in _as_list(statement["Resource"]):
            # X-Ray accepts no narrower resource; everything else names its ARN.
            assert all(action.startswith("xray:") for action in actions), actions


def test_only_the_expected_services_are_granted(statements: list[dict[str, Any]]) -> None:
    services = {action.split(":")[0] for action in _actions(statements)}

    assert services <= {"dynamodb", "secretsmanager", "xray"}


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
    (by_booking,) = reschedules["GlobalSecondaryIndexes"]
    assert by_booking["IndexName"] == "ByBooking"
    assert by_booking["KeySchema"] == [
        {"AttributeName": "booking_key", "KeyType": "HASH"},
        {"AttributeName": "attempted_at", "KeyType": "RANGE"},
    ]
    assert by_booking["Projection"] == {"ProjectionType": "ALL"}


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
