"""RecordingPersistenceLayer computes one request's key and payload hashes once, as Powertools would."""

from __future__ import annotations

import copy

import boto3
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig

from relay.dal.idempotency import RecordingPersistenceLayer
from relay.dal.records import RecordStore

CONFIG = IdempotencyConfig(
    event_key_jmespath="key", payload_validation_jmespath="payload", raise_on_no_idempotency_key=True
)


def _layers() -> tuple[RecordingPersistenceLayer, DynamoDBPersistenceLayer]:
    # No call is made: a client for a closed local port is enough to build both stores.
    client = boto3.client(
        "dynamodb",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="sandbox-key",
        aws_secret_access_key="sandbox-secret",
    )
    ours = RecordingPersistenceLayer(table_name="t", records=RecordStore(client, "r"), client=client)
    theirs = DynamoDBPersistenceLayer(table_name="t", boto3_client=client)
    for layer in (ours, theirs):
        layer.configure(CONFIG, function_name="f")
    return ours, theirs


def test_hashes_match_powertools_and_follow_the_data() -> None:
    ours, theirs = _layers()
    first = {"key": "src|header:a", "payload": {"start": "2027-01-01T10:00:00Z"}, "source": "src"}
    second = copy.deepcopy(first) | {"key": "src|header:b", "payload": {"start": "2027-01-02T10:00:00Z"}}
    ours.begin()
    for data in (first, first, second, first):
        assert ours._get_hashed_idempotency_key(data) == theirs._get_hashed_idempotency_key(data)
        assert ours._get_hashed_payload(data) == theirs._get_hashed_payload(data)
    assert ours._get_hashed_idempotency_key(first) != ours._get_hashed_idempotency_key(second)


def test_a_new_request_forgets_the_last_ones_hashes() -> None:
    ours, theirs = _layers()
    data = {"key": "src|header:a", "payload": {"n": 1}}
    ours.begin()
    ours._get_hashed_payload(data)
    data["payload"] = {"n": 2}  # Powertools never mutates its data; a new request starts afresh anyway
    ours.begin()
    assert ours._get_hashed_payload(data) == theirs._get_hashed_payload(data)
