"""The queued request's writes: the worker's per-delivery lock, its progress, and the final state
written with the idempotency item's completion or release, in one transaction each.

The lock lives on the attempt record itself (`delivery_lock`, `delivery_lock_expires`): taking it
and reading the state it guards is one conditional write, and a cancel can refuse atomically while a
delivery holds it. It expires with the invocation that took it, in step with the message's
visibility timeout (which outlasts the worker's Timeout).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from relay.dal.idempotency import last_move_id, last_move_item
from relay.dal.records import RecordStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# Powertools' DynamoDB item: attribute names and the completed status (its defaults, used by the relay).
IDEMPOTENCY_KEY_ATTR = "id"
IDEMPOTENCY_DATA_ATTR = "data"
IDEMPOTENCY_STATUS_ATTR = "status"
IDEMPOTENCY_EXPIRY_ATTR = "expiration"
IDEMPOTENCY_COMPLETED = "COMPLETED"

_LOCK_FREE = "(attribute_not_exists(delivery_lock) OR delivery_lock_expires < :now)"


class DeliveryWriteFailed(Exception):
    """DynamoDB did not take the write (unreachable or throttled): the message is tried again later."""


class LockNotHeld(Exception):
    """The condition failed: someone else holds the delivery, or the record moved on (cancelled, done)."""


def _conditional_failure(exc: ClientError) -> bool:
    error = exc.response.get("Error", {}).get("Code", "")
    if error == "ConditionalCheckFailedException":
        return True
    reasons = exc.response.get("CancellationReasons") or []
    return error == "TransactionCanceledException" and any(
        r.get("Code") == "ConditionalCheckFailed" for r in reasons
    )


class DeliveryStore:
    def __init__(self, client: DynamoDBClient, idempotency_table: str, records: RecordStore) -> None:
        self._client = client
        self._idempotency_table = idempotency_table
        self._records = records

    def read(self, reschedule_id: str) -> dict[str, Any] | None:
        try:
            return self._records.get(reschedule_id)
        except (BotoCoreError, ClientError) as exc:
            raise DeliveryWriteFailed(type(exc).__name__) from exc

    def take(self, reschedule_id: str, token: str, *, now: int, until: int) -> None:
        """Lock a queued record for one delivery attempt, until `until` (epoch seconds)."""
        self._write(
            self._client.update_item,
            TableName=self._records.table_name,
            Key={"reschedule_id": {"S": reschedule_id}},
            UpdateExpression="SET delivery_lock = :token, delivery_lock_expires = :until",
            ConditionExpression=f"#status = :queued AND {_LOCK_FREE}",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":token": {"S": token},
                ":until": {"N": str(until)},
                ":now": {"N": str(now)},
                ":queued": {"S": "queued"},
            },
        )

    def release_lock(self, reschedule_id: str, token: str) -> None:
        self._write(
            self._client.update_item,
            TableName=self._records.table_name,
            Key={"reschedule_id": {"S": reschedule_id}},
            UpdateExpression="REMOVE delivery_lock, delivery_lock_expires",
            ConditionExpression="delivery_lock = :token",
            ExpressionAttributeValues={":token": {"S": token}},
        )

    def progress(self, record: Mapping[str, Any], token: str) -> None:
        """Replace the locked record with its next state (still queued); the lock goes with it."""
        self._write(self._client.put_item, **self._locked_put(record, token))

    def succeed(
        self,
        record: Mapping[str, Any],
        token: str,
        *,
        idempotency_record: str,
        answer: dict[str, Any],
        expires_at: int,
    ) -> None:
        """The final success: the key now answers repeats with the sync success answer."""
        self._write(
            self._client.transact_write_items,
            TransactItems=[
                {
                    "Update": {
                        "TableName": self._idempotency_table,
                        "Key": {IDEMPOTENCY_KEY_ATTR: {"S": idempotency_record}},
                        "UpdateExpression": "SET #data = :data, #status = :completed, #expiry = :expiry",
                        "ExpressionAttributeNames": {
                            "#data": IDEMPOTENCY_DATA_ATTR,
                            "#status": IDEMPOTENCY_STATUS_ATTR,
                            "#expiry": IDEMPOTENCY_EXPIRY_ATTR,
                        },
                        "ExpressionAttributeValues": {
                            # Serialised as Powertools stores a result, so its replay reads it back.
                            ":data": {"S": json.dumps(answer, sort_keys=True)},
                            ":completed": {"S": IDEMPOTENCY_COMPLETED},
                            ":expiry": {"N": str(expires_at)},
                        },
                    }
                },
                {"Put": self._locked_put(record, token)},
                # The booking's last move, as a sync success writes it (content-keyed repeats check it).
                {
                    "Put": {
                        "TableName": self._idempotency_table,
                        "Item": last_move_item(
                            last_move_id(
                                str(record.get("source")),
                                str(record.get("provider")),
                                str(record.get("booking_id")),
                            ),
                            idempotency_record,
                            str(record.get("reschedule_id")),
                            expires_at,
                        ),
                    }
                },
            ],
        )

    def fail(self, record: Mapping[str, Any], token: str, *, idempotency_record: str) -> None:
        """The final failure: the key is released so the caller's retry runs again."""
        self._write(
            self._client.transact_write_items,
            TransactItems=[self._release(idempotency_record), {"Put": self._locked_put(record, token)}],
        )

    def cancel(self, record: Mapping[str, Any], *, idempotency_record: str, now: int) -> None:
        """Cancel a queued record no delivery holds; LockNotHeld when it is being delivered or done."""
        put = self._records.put_request(record)
        put["ConditionExpression"] = f"#status = :queued AND {_LOCK_FREE}"
        put["ExpressionAttributeNames"] = {"#status": "status"}
        put["ExpressionAttributeValues"] = {":queued": {"S": "queued"}, ":now": {"N": str(now)}}
        self._write(
            self._client.transact_write_items,
            TransactItems=[self._release(idempotency_record), {"Put": put}],
        )

    def _release(self, idempotency_record: str) -> Any:
        return {
            "Delete": {
                "TableName": self._idempotency_table,
                "Key": {IDEMPOTENCY_KEY_ATTR: {"S": idempotency_record}},
            }
        }

    def _locked_put(self, record: Mapping[str, Any], token: str) -> Any:
        put = self._records.put_request(record)
        put["ConditionExpression"] = "delivery_lock = :token"
        put["ExpressionAttributeValues"] = {":token": {"S": token}}
        return put

    @staticmethod
    def _write(operation: Any, **request: Any) -> None:
        try:
            operation(**request)
        except ClientError as exc:
            if _conditional_failure(exc):
                raise LockNotHeld() from None
            raise DeliveryWriteFailed(exc.response.get("Error", {}).get("Code", "")) from exc
        except BotoCoreError as exc:
            raise DeliveryWriteFailed(type(exc).__name__) from exc
