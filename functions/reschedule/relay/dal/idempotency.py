"""Powertools' DynamoDB idempotency store, finishing each request in one round trip.

Powertools completes a request with one write (UpdateItem on success, DeleteItem on failure); the
relay also records every attempt. Here both happen in one `TransactWriteItems`, so a new reschedule
costs two DynamoDB round trips in all (the lock, then this) and the lock never ends without its record.

The use case stages that record in one explicit slot (`stage`) before Powertools finishes the
request; Lambda runs one request at a time per container, so one slot per store is enough.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

from relay.dal.records import RecordStore

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
    from mypy_boto3_dynamodb import DynamoDBClient


@dataclass
class Staged:
    """What one run produced: the attempt record to write, and the answer it stands for."""

    record: Mapping[str, Any]
    answer: object
    written: bool = False


class RecordingPersistenceLayer(DynamoDBPersistenceLayer):
    def __init__(self, *, table_name: str, records: RecordStore, client: DynamoDBClient) -> None:
        super().__init__(table_name=table_name, boto3_client=client)
        self._records = records
        self.staged: Staged | None = None

    def begin(self) -> None:
        """A new request: nothing staged yet."""
        self.staged = None

    def stage(self, record: Mapping[str, Any], answer: object) -> None:
        """The attempt record to write with the lock's completion or release."""
        self.staged = Staged(record, answer)

    def _take(self) -> Mapping[str, Any] | None:
        if self.staged is None or self.staged.written:
            return None
        return self.staged.record

    def _written(self) -> None:
        if self.staged is not None:
            self.staged.written = True

    def _update_record(self, data_record: DataRecord) -> None:
        record = self._take()
        if record is None:
            super()._update_record(data_record)
            return
        names = {"#expiry": self.expiry_attr, "#response_data": self.data_attr, "#status": self.status_attr}
        values: dict[str, Any] = {
            ":expiry": {"N": str(data_record.expiry_timestamp)},
            ":response_data": {"S": data_record.response_data},
            ":status": {"S": data_record.status},
        }
        expression = "SET #response_data = :response_data, #expiry = :expiry, #status = :status"
        if self.payload_validation_enabled:
            expression += ", #validation_key = :validation_key"
            names["#validation_key"] = self.validation_key_attr
            values[":validation_key"] = {"S": data_record.payload_hash}
        self.client.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": self.table_name,
                        "Key": self._get_key(data_record.idempotency_key),
                        "UpdateExpression": expression,
                        "ExpressionAttributeNames": names,
                        "ExpressionAttributeValues": values,
                    }
                },
                {"Put": self._records.put_request(record)},
            ]
        )
        self._written()

    def _delete_record(self, data_record: DataRecord) -> None:
        record = self._take()
        if record is None:
            super()._delete_record(data_record)
            return
        self.client.transact_write_items(
            TransactItems=[
                {"Delete": {"TableName": self.table_name, "Key": self._get_key(data_record.idempotency_key)}},
                {"Put": self._records.put_request(record)},
            ]
        )
        self._written()
