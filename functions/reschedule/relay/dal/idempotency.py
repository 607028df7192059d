"""Powertools' DynamoDB idempotency store, finishing each request in one round trip.

Powertools completes a request with one write (UpdateItem on success, DeleteItem on failure); the
relay also records every attempt. Here both happen in one `TransactWriteItems`, so a new reschedule
costs two DynamoDB round trips in all (the lock, then this) and the lock never ends without its record.

The use case stages that record in one explicit slot (`stage`) before Powertools finishes the
request; Lambda runs one request at a time per container, so one slot per store is enough.

A successful move also writes a small "last move" item per (source, provider, booking) in that same
transaction. A request keyed by its content only (no Idempotency-Key) is a replay only while its
stored answer is still the booking's last move: A -> B -> A must move the booking back, not replay
A's old answer. Checking costs one GetItem, on that replay path only; a stale answer is taken over
(its lock re-taken in one conditional put) and the request runs afresh.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyItemAlreadyExistsError
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import STATUS_CONSTANTS
from botocore.exceptions import ClientError

from relay.dal.records import RecordStore

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

LAST_MOVE_PREFIX = "last-move"
LAST_MOVE_KEY_ATTR = "move_key"


@dataclass(frozen=True)
class MoveScope:
    """The booking a run may move, and whether a stored answer stands only while it is its last move."""

    source: str
    provider: str
    booking_id: str
    replay_only_if_last_move: bool

    @property
    def item_id(self) -> str:
        return last_move_id(self.source, self.provider, self.booking_id)


def last_move_id(source: str, provider: str, booking_id: str) -> str:
    return f"{LAST_MOVE_PREFIX}#{source}#{provider}#{booking_id}"


def last_move_item(item_id: str, idempotency_key: str, reschedule_id: str, expires_at: int) -> dict[str, Any]:
    """The last-move item (the idempotency table's key attribute is Powertools' default, `id`)."""
    return {
        "id": {"S": item_id},
        LAST_MOVE_KEY_ATTR: {"S": idempotency_key},
        "reschedule_id": {"S": reschedule_id},
        "expiration": {"N": str(expires_at)},
    }


def _is_success(record: DataRecord) -> bool:
    """A stored answer that moved the booking (not a queued one, which a repeat must not run again)."""
    try:
        answer = record.response_json_as_dict()
    except ValueError:
        return False
    return isinstance(answer, dict) and answer.get("status") == "succeeded"


@dataclass
class Staged:
    """What one run produced: the attempt record to write, and the answer it stands for."""

    record: Mapping[str, Any]
    answer: object
    written: bool = False
    # The idempotency item's expiry (epoch seconds) when it must outlive the usual TTL (a queued answer).
    expires_at: int | None = None


class RecordingPersistenceLayer(DynamoDBPersistenceLayer):
    def __init__(self, *, table_name: str, records: RecordStore, client: DynamoDBClient) -> None:
        super().__init__(table_name=table_name, boto3_client=client)
        self._records = records
        self.staged: Staged | None = None
        self.scope: MoveScope | None = None
        # One request's hashes: Powertools hashes the same data for the lock and again for its completion.
        self._hashed: tuple[object, dict[str, str | None]] | None = None

    def begin(self, scope: MoveScope | None = None) -> None:
        """A new request: nothing staged yet; `scope` says which booking's last move it may write."""
        self.staged = None
        self.scope = scope
        self._hashed = None

    def _hashes_of(self, data: object) -> dict[str, str | None]:
        """The memo for `data` (held, so its identity stays this request's; Powertools never mutates it)."""
        if self._hashed is None or self._hashed[0] is not data:
            self._hashed = (data, {})
        return self._hashed[1]

    def _get_hashed_idempotency_key(self, data: dict[str, Any]) -> str | None:
        memo = self._hashes_of(data)
        if "key" not in memo:
            memo["key"] = super()._get_hashed_idempotency_key(data)
        return memo["key"]

    def _get_hashed_payload(self, data: dict[str, Any]) -> str:
        memo = self._hashes_of(data)
        if "payload" not in memo:
            memo["payload"] = super()._get_hashed_payload(data)
        return memo["payload"] or ""

    def stage(self, record: Mapping[str, Any], answer: object, *, expires_at: int | None = None) -> None:
        """The attempt record to write with the lock's completion or release."""
        self.staged = Staged(record, answer, expires_at=expires_at)

    def record_key(self, data: dict[str, Any]) -> str:
        """The idempotency item's key for `data` (the run's fields), as Powertools computes it."""
        key = self._get_hashed_idempotency_key(data)
        if key is None:  # raise_on_no_idempotency_key is set, so Powertools raises first; a guard for mypy
            raise ValueError("no idempotency key in the data")
        return key

    def release(self, idempotency_record: str) -> None:
        """Delete an item this request holds (best effort: a queued answer that could not be stored)."""
        self.client.delete_item(TableName=self.table_name, Key=self._get_key(idempotency_record))

    def _take(self) -> Mapping[str, Any] | None:
        if self.staged is None or self.staged.written:
            return None
        return self.staged.record

    def _written(self) -> None:
        if self.staged is not None:
            self.staged.written = True

    # -- the last move: a content-keyed answer is a replay only while it is still the booking's last move

    def _put_record(self, data_record: DataRecord) -> None:
        try:
            super()._put_record(data_record)
        except IdempotencyItemAlreadyExistsError as exc:
            old = exc.old_data_record
            scope = self.scope
            if scope is None or not scope.replay_only_if_last_move or old is None:
                raise
            if old.status != STATUS_CONSTANTS["COMPLETED"] or not _is_success(old):
                raise  # in progress, or a queued answer: the request is not run again
            if self._is_last_move(scope, old):
                raise
            self._take_over(data_record, old)

    def _is_last_move(self, scope: MoveScope, old: DataRecord) -> bool:
        """The one extra read: is the stored answer's request the booking's last successful move?"""
        item = self.client.get_item(
            TableName=self.table_name, Key=self._get_key(scope.item_id), ConsistentRead=True
        ).get("Item")
        return item is not None and item.get(LAST_MOVE_KEY_ATTR, {}).get("S") == old.idempotency_key

    def _take_over(self, data_record: DataRecord, old: DataRecord) -> None:
        """Re-take the lock of a stale completed answer, only if no one else changed it meanwhile."""
        item: dict[str, Any] = {
            **self._get_key(data_record.idempotency_key),
            self.expiry_attr: {"N": str(data_record.expiry_timestamp)},
            self.status_attr: {"S": data_record.status},
        }
        if data_record.in_progress_expiry_timestamp is not None:
            item[self.in_progress_expiry_attr] = {"N": str(data_record.in_progress_expiry_timestamp)}
        if self.payload_validation_enabled and data_record.payload_hash:
            item[self.validation_key_attr] = {"S": data_record.payload_hash}
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=item,
                ConditionExpression="#status = :completed AND #expiry = :old_expiry",
                ExpressionAttributeNames={"#status": self.status_attr, "#expiry": self.expiry_attr},
                ExpressionAttributeValues={
                    ":completed": {"S": STATUS_CONSTANTS["COMPLETED"]},
                    ":old_expiry": {"N": str(old.expiry_timestamp)},
                },
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                # Someone else took it meanwhile: Powertools reads the record and answers from it.
                raise IdempotencyItemAlreadyExistsError() from exc
            raise

    def _last_move_put(
        self, data_record: DataRecord, record: Mapping[str, Any]
    ) -> list[TransactWriteItemTypeDef]:
        """The last-move item for a success (it lives as long as the answer it vouches for)."""
        if self.scope is None or record.get("status") != "succeeded":
            return []
        item = last_move_item(
            self.scope.item_id,
            data_record.idempotency_key,
            str(record.get("reschedule_id", "")),
            data_record.expiry_timestamp or 0,
        )
        return [{"Put": {"TableName": self.table_name, "Item": item}}]

    def _update_record(self, data_record: DataRecord) -> None:
        record = self._take()
        if record is None:
            super()._update_record(data_record)
            return
        names = {"#expiry": self.expiry_attr, "#response_data": self.data_attr, "#status": self.status_attr}
        expires_at = self.staged.expires_at if self.staged is not None else None
        values: dict[str, Any] = {
            ":expiry": {"N": str(expires_at or data_record.expiry_timestamp)},
            ":response_data": {"S": data_record.response_data},
            ":status": {"S": data_record.status},
        }
        expression = "SET #response_data = :response_data, #expiry = :expiry, #status = :status"
        if self.payload_validation_enabled:
            expression += ", #validation_key = :validation_key"
            names["#validation_key"] = self.validation_key_attr
            values[":validation_key"] = {"S": data_record.payload_hash}
        self.client.transact_write_items(
            # The last move first: a store that applies items in order never shows the answer without it.
            TransactItems=[
                *self._last_move_put(data_record, record),
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
