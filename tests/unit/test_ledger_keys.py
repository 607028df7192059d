"""The ledger keys items as the Powertools idempotency utility did, so a deployed table's items stay
readable across the upgrade (docs/deploying.md); the product no longer imports that utility."""

from __future__ import annotations

import boto3
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig

from relay.dal.ledger import KEY_PREFIX, ledger_key

CONFIG = IdempotencyConfig(
    event_key_jmespath="key",
    payload_validation_jmespath="payload",
    raise_on_no_idempotency_key=True,
    hash_function="sha256",  # as the relay configured it
)


def test_item_ids_and_payload_hashes_match_the_items_powertools_wrote() -> None:
    # No call is made: a client for a closed local port is enough to build the layer.
    client = boto3.client(
        "dynamodb",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="sandbox-key",
        aws_secret_access_key="sandbox-secret",
    )
    powertools = DynamoDBPersistenceLayer(table_name="t", boto3_client=client)
    powertools.configure(CONFIG, function_name="f", key_prefix=KEY_PREFIX)
    for scoped, payload in (
        ("src|header:a", {"start": "2027-01-01T10:00:00Z", "booking_id": "1001"}),
        ("src|command:0f3c", {"provider": "iclosed", "start": "2027-01-02T10:00:00Z"}),
    ):
        data = {"key": scoped, "payload": payload}
        key = ledger_key(
            scoped, payload, source="src", provider="iclosed", booking_id="1001", content_keyed=False
        )

        assert key.item_id == powertools._get_hashed_idempotency_key(data)
        assert key.payload_hash == powertools._get_hashed_payload(data)


def test_keys_differ_by_source_scope_and_payload() -> None:
    a = ledger_key(
        "a|header:k", {"x": 1}, source="a", provider="iclosed", booking_id="1", content_keyed=False
    )
    b = ledger_key(
        "b|header:k", {"x": 1}, source="b", provider="iclosed", booking_id="1", content_keyed=False
    )
    c = ledger_key(
        "a|header:k", {"x": 2}, source="a", provider="iclosed", booking_id="1", content_keyed=False
    )
    assert a.item_id != b.item_id
    assert (a.item_id, a.payload_hash != c.payload_hash) == (c.item_id, True)
    assert a.last_move_id != b.last_move_id
