"""The local stack's infrastructure: DynamoDB Local with the template's tables, and the secrets emulator.

Runs the real servers (Java DynamoDB Local, moto's server mode) as child processes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local.dynamodb_local import DynamoDBLocal, dynamodb_client, java_major_version, start_dynamodb_local
from local.secrets_emulator import (
    SecretsEmulator,
    put_secret_json,
    secretsmanager_client,
    start_secrets_emulator,
)
from local.stack import TABLE_NAMES as STACK_TABLE_NAMES
from local.tables import TableDrift, create_tables
from local.template import load_template

TABLE_NAMES = {"IdempotencyTable": "test-idempotency", "ReschedulesTable": "test-reschedules"}


@pytest.fixture(scope="module")
def dynamodb() -> Iterator[DynamoDBLocal]:
    with start_dynamodb_local() as server:
        yield server


@pytest.fixture(scope="module")
def secrets() -> Iterator[SecretsEmulator]:
    with start_secrets_emulator() as server:
        yield server


@pytest.fixture(scope="module")
def dynamodb_with_tables(dynamodb: DynamoDBLocal) -> Any:
    client = dynamodb_client(dynamodb.endpoint)
    create_tables(client, TABLE_NAMES)
    return client


def _process_is_gone(pid: int) -> bool:
    # Signal 0 checks existence only; the server led its own process group, so check the group too.
    for check in (os.kill, os.killpg):
        try:
            check(pid, 0)
        except ProcessLookupError:
            continue
        return False
    return True


def _key_set(key_schema: list[dict[str, str]]) -> set[tuple[str, str]]:
    return {(key["AttributeName"], key["KeyType"]) for key in key_schema}


@pytest.mark.parametrize("logical_id", sorted(TABLE_NAMES))
def test_tables_match_the_template(dynamodb_with_tables: Any, logical_id: str) -> None:
    # Compared with template.yaml's own text, not with what local.tables derived from it.
    expected = load_template()["Resources"][logical_id]["Properties"]

    table = dynamodb_with_tables.describe_table(TableName=TABLE_NAMES[logical_id])["Table"]
    ttl = dynamodb_with_tables.describe_time_to_live(TableName=TABLE_NAMES[logical_id])

    assert table["TableStatus"] == "ACTIVE"
    assert table["BillingModeSummary"]["BillingMode"] == expected["BillingMode"] == "PAY_PER_REQUEST"
    assert _key_set(table["KeySchema"]) == _key_set(expected["KeySchema"])
    assert {(a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]} == {
        (a["AttributeName"], a["AttributeType"]) for a in expected["AttributeDefinitions"]
    }
    actual_indexes = {
        index["IndexName"]: (_key_set(index["KeySchema"]), index["Projection"]["ProjectionType"])
        for index in table.get("GlobalSecondaryIndexes", [])
    }
    expected_indexes = {
        index["IndexName"]: (_key_set(index["KeySchema"]), index["Projection"]["ProjectionType"])
        for index in expected.get("GlobalSecondaryIndexes", [])
    }
    assert actual_indexes == expected_indexes
    assert "LocalSecondaryIndexes" not in table
    assert "LocalSecondaryIndexes" not in expected
    assert expected["TimeToLiveSpecification"]["Enabled"] is True
    assert ttl["TimeToLiveDescription"] == {
        "TimeToLiveStatus": "ENABLED",
        "AttributeName": expected["TimeToLiveSpecification"]["AttributeName"],
    }


def test_every_template_table_is_created_locally() -> None:
    tables = {n for n, r in load_template()["Resources"].items() if r["Type"] == "AWS::DynamoDB::Table"}

    assert tables == set(TABLE_NAMES) == set(STACK_TABLE_NAMES)


def test_create_tables_is_idempotent(dynamodb_with_tables: Any) -> None:
    # Given tables that already exist (as with a persisted local database)
    # When they are created again
    create_tables(dynamodb_with_tables, TABLE_NAMES)

    # Then nothing changes and nothing fails
    names = dynamodb_with_tables.list_tables()["TableNames"]
    assert sorted(name for name in names if name in TABLE_NAMES.values()) == sorted(TABLE_NAMES.values())


def test_history_index_answers_queries(dynamodb_with_tables: Any) -> None:
    table = TABLE_NAMES["ReschedulesTable"]
    for reschedule_id, attempted_at in (("r2", "2030-01-01T10:05:00Z"), ("r1", "2030-01-01T10:00:00Z")):
        dynamodb_with_tables.put_item(
            TableName=table,
            Item={
                "reschedule_id": {"S": reschedule_id},
                "booking_key": {"S": "iclosed#42"},
                "attempted_at": {"S": attempted_at},
            },
        )

    result = dynamodb_with_tables.query(
        TableName=table,
        IndexName="ByBooking",
        KeyConditionExpression="booking_key = :key",
        ExpressionAttributeValues={":key": {"S": "iclosed#42"}},
    )

    assert [item["reschedule_id"]["S"] for item in result["Items"]] == ["r1", "r2"]


def test_existing_table_with_other_keys_is_reported(dynamodb_with_tables: Any) -> None:
    # Given a table under the idempotency table's name but keyed differently (old persisted data)
    dynamodb_with_tables.create_table(
        TableName="test-drifted",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )

    # When/Then the tables are created: the mismatch is an error, not silently used
    with pytest.raises(TableDrift, match="test-drifted"):
        create_tables(dynamodb_with_tables, {"IdempotencyTable": "test-drifted"})


def test_unknown_logical_id_is_rejected(dynamodb_with_tables: Any) -> None:
    with pytest.raises(KeyError, match="NoSuchTable"):
        create_tables(dynamodb_with_tables, {"NoSuchTable": "x"})


def test_secret_round_trip(secrets: SecretsEmulator) -> None:
    client = secretsmanager_client(secrets.endpoint)

    put_secret_json(client, "relay-test/providers/iclosed/default", {"api_key": "first"})
    put_secret_json(client, "relay-test/providers/iclosed/default", {"api_key": "second"})

    value = client.get_secret_value(SecretId="relay-test/providers/iclosed/default")
    assert value["SecretString"] == '{"api_key": "second"}'


def test_persisted_tables_survive_a_restart(tmp_path: Path) -> None:
    # Given a persisted database with the tables and one item (as `make run` keeps between runs)
    with start_dynamodb_local(db_path=tmp_path / "db") as first:
        client = dynamodb_client(first.endpoint)
        create_tables(client, TABLE_NAMES)
        client.put_item(TableName=TABLE_NAMES["IdempotencyTable"], Item={"id": {"S": "kept"}})

    # When DynamoDB Local starts again on the same data and the tables are "created" again
    with start_dynamodb_local(db_path=tmp_path / "db") as second:
        client = dynamodb_client(second.endpoint)
        create_tables(client, TABLE_NAMES)

        # Then the data is still there
        item = client.get_item(TableName=TABLE_NAMES["IdempotencyTable"], Key={"id": {"S": "kept"}})
        assert item["Item"] == {"id": {"S": "kept"}}

    assert _process_is_gone(first.pid)
    assert _process_is_gone(second.pid)


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15\nOpenJDK Runtime Environment', 17),
        ('openjdk version "21" 2023-09-19', 21),
        ('java version "1.8.0_292"', 8),
        ("no version here", None),
    ],
)
def test_java_version_parsing(output: str, major: int | None) -> None:
    assert java_major_version(output) == major


# Last in the module: stops the shared servers (the fixtures' own stop() then has nothing to do).
def test_stop_leaves_no_process_behind(dynamodb: DynamoDBLocal, secrets: SecretsEmulator) -> None:
    assert not _process_is_gone(dynamodb.pid)
    assert not _process_is_gone(secrets.pid)

    dynamodb.stop()
    secrets.stop()
    dynamodb.stop()  # idempotent

    assert _process_is_gone(dynamodb.pid)
    assert _process_is_gone(secrets.pid)
    assert not dynamodb.running
    assert not secrets.running
