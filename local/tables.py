"""Create the relay's DynamoDB tables from template.yaml, so local tables never drift from production."""

from __future__ import annotations

import contextlib
from typing import Any

from local.template import load_template

TABLE_TYPE = "AWS::DynamoDB::Table"
# Key that carries the TTL attribute next to the create_table kwargs in a table definition.
TTL_ATTRIBUTE_KEY = "TimeToLiveAttribute"
# DynamoDB Local creates tables ACTIVE at once; real DynamoDB takes seconds. Poll briefly, not 20 s.
_WAITER_CONFIG = {"Delay": 1, "MaxAttempts": 60}
# DynamoDB's BatchWriteItem limit, and how many rounds of unprocessed items are retried.
BATCH_WRITE_MAX_ITEMS = 25
BATCH_WRITE_ATTEMPTS = 5


class TableDrift(RuntimeError):
    """An existing table's keys differ from the template (e.g. a persisted local DB from older code)."""


def _literal(value: Any, where: str) -> Any:
    """Reject intrinsics: a local table definition must be fully known from the template text."""
    if isinstance(value, dict) and any(key == "Ref" or key.startswith("Fn::") for key in value):
        raise ValueError(f"{where} uses an intrinsic function; local tables need literal values")
    return value


def _table_definition(logical_id: str, properties: dict[str, Any]) -> dict[str, Any]:
    billing_mode = _literal(properties.get("BillingMode", "PROVISIONED"), f"{logical_id}.BillingMode")
    if billing_mode != "PAY_PER_REQUEST":
        raise ValueError(f"{logical_id}: only PAY_PER_REQUEST tables are supported, got {billing_mode}")
    definition: dict[str, Any] = {
        "KeySchema": _literal(properties["KeySchema"], f"{logical_id}.KeySchema"),
        "AttributeDefinitions": _literal(
            properties["AttributeDefinitions"], f"{logical_id}.AttributeDefinitions"
        ),
        "BillingMode": billing_mode,
    }
    indexes = properties.get("GlobalSecondaryIndexes")
    if indexes:
        definition["GlobalSecondaryIndexes"] = [
            {
                "IndexName": _literal(index["IndexName"], f"{logical_id}.IndexName"),
                "KeySchema": _literal(index["KeySchema"], f"{logical_id}.{index['IndexName']}.KeySchema"),
                "Projection": _literal(index["Projection"], f"{logical_id}.{index['IndexName']}.Projection"),
            }
            for index in indexes
        ]
    ttl = properties.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled", True) is True:
        definition[TTL_ATTRIBUTE_KEY] = _literal(
            ttl["AttributeName"], f"{logical_id}.TimeToLiveSpecification"
        )
    return definition


def table_definitions(template: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Per table logical id: boto3 ``create_table`` kwargs (without TableName) plus ``TimeToLiveAttribute``.

    Pop ``TimeToLiveAttribute`` before passing the rest to ``create_table``.
    """
    template = load_template() if template is None else template
    return {
        logical_id: _table_definition(logical_id, resource.get("Properties", {}))
        for logical_id, resource in template["Resources"].items()
        if resource.get("Type") == TABLE_TYPE
    }


def _key_shape(description: dict[str, Any]) -> dict[str, Any]:
    """The parts of a table that cannot change in place: key schema and index key schemas."""
    return {
        "KeySchema": sorted((k["AttributeName"], k["KeyType"]) for k in description["KeySchema"]),
        "GlobalSecondaryIndexes": sorted(
            (index["IndexName"], sorted((k["AttributeName"], k["KeyType"]) for k in index["KeySchema"]))
            for index in description.get("GlobalSecondaryIndexes", [])
        ),
    }


def _create_if_missing(dynamodb_client: Any, table_name: str, create_kwargs: dict[str, Any]) -> None:
    # Already there (a persisted local DB, or a second caller) is fine: its shape is checked below.
    with contextlib.suppress(dynamodb_client.exceptions.ResourceInUseException):
        dynamodb_client.create_table(TableName=table_name, **create_kwargs)
    dynamodb_client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig=_WAITER_CONFIG)
    existing = dynamodb_client.describe_table(TableName=table_name)["Table"]
    if _key_shape(existing) != _key_shape(create_kwargs):
        raise TableDrift(
            f"table {table_name} exists with keys/indexes that differ from template.yaml; "
            "delete it (or the local data directory) and start again"
        )


def _enable_ttl(dynamodb_client: Any, table_name: str, attribute: str) -> None:
    current = dynamodb_client.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
    status = current.get("TimeToLiveStatus")
    if status in {"ENABLED", "ENABLING"} and current.get("AttributeName") == attribute:
        return
    if status in {"ENABLED", "ENABLING"}:
        # TTL is on for another attribute: DynamoDB wants it switched off before switching attributes.
        dynamodb_client.update_time_to_live(
            TableName=table_name,
            TimeToLiveSpecification={"AttributeName": current["AttributeName"], "Enabled": False},
        )
    dynamodb_client.update_time_to_live(
        TableName=table_name, TimeToLiveSpecification={"AttributeName": attribute, "Enabled": True}
    )


def create_tables(
    dynamodb_client: Any, names: dict[str, str], template: dict[str, Any] | None = None
) -> None:
    """Create the template's tables under local names, e.g. ``{"IdempotencyTable": "relay-idem"}``.

    Idempotent: existing tables are kept (their keys must match the template) and TTL is switched on
    only where it is not already. Waits until every table is ACTIVE.
    """
    definitions = table_definitions(template)
    unknown = sorted(set(names) - set(definitions))
    if unknown:
        raise KeyError(f"not DynamoDB tables in template.yaml: {', '.join(unknown)}")
    for logical_id, table_name in names.items():
        create_kwargs = dict(definitions[logical_id])
        ttl_attribute = create_kwargs.pop(TTL_ATTRIBUTE_KEY, None)
        _create_if_missing(dynamodb_client, table_name, create_kwargs)
        if ttl_attribute is not None:
            _enable_ttl(dynamodb_client, table_name, ttl_attribute)


def clear_table(dynamodb_client: Any, table_name: str) -> int:
    """Delete every item of a table, keeping the table; returns how many were deleted."""
    key_names = [
        key["AttributeName"]
        for key in dynamodb_client.describe_table(TableName=table_name)["Table"]["KeySchema"]
    ]
    deleted = 0
    for page in dynamodb_client.get_paginator("scan").paginate(
        TableName=table_name,
        ProjectionExpression=", ".join(f"#k{i}" for i in range(len(key_names))),
        ExpressionAttributeNames={f"#k{i}": name for i, name in enumerate(key_names)},
    ):
        items = page["Items"]
        for start in range(0, len(items), BATCH_WRITE_MAX_ITEMS):
            requests = [
                {"DeleteRequest": {"Key": item}} for item in items[start : start + BATCH_WRITE_MAX_ITEMS]
            ]
            _write_all(dynamodb_client, table_name, requests)
            deleted += len(requests)
    return deleted


def _write_all(dynamodb_client: Any, table_name: str, requests: list[dict[str, Any]]) -> None:
    pending = {table_name: requests}
    for _ in range(BATCH_WRITE_ATTEMPTS):
        pending = dynamodb_client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
        if not pending:
            return
    raise RuntimeError(f"{table_name}: items still unprocessed after {BATCH_WRITE_ATTEMPTS} batch writes")
