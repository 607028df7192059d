"""Outcome callbacks' state, in the idempotency table: which events were delivered (so a copy of a
message SQS delivers twice is not POSTed twice), who is POSTing one now, and which sources' callbacks
a receiver switched off with `410 Gone`.

Items: `callback#<webhook-id>` {state: sending | delivered, lock_until};
`callback-off#<source>` {fingerprint}: the callback (URL and secrets) that answered 410; a changed
registry entry has another fingerprint, so it is on again; and `callback-slot#<source>#<n>`
{lock_until}: one of the source's `callback_source_concurrency` POST slots, held until lock_until
(a worker that dies holding one frees it by that time).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from relay.ports import CallbackClaim as Claim
from relay.ports import CallbackStoreFailed, Claimed

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

EVENT_PREFIX = "callback"
OFF_PREFIX = "callback-off"
SLOT_PREFIX = "callback-slot"
# A slot item outlives its longest hold by far; the table's TTL removes idle sources' slots.
SLOT_TTL_SECONDS = 86400
# A delivered event is remembered this long (the longest retry schedule is about 33 hours).
EVENT_TTL_SECONDS = 3 * 86400
# A switched-off callback stays off this long unless the registry changes first.
OFF_TTL_SECONDS = 90 * 86400

_FREE = "attribute_not_exists(id) OR (#state = :sending AND lock_until < :now)"


class CallbackState:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def claim(self, webhook_id: str, *, now: int, until: int) -> Claimed:
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"id": {"S": f"{EVENT_PREFIX}#{webhook_id}"}},
                UpdateExpression="SET #state = :sending, lock_until = :until, expiration = :exp",
                ConditionExpression=_FREE,
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":sending": {"S": "sending"},
                    ":until": {"N": str(until)},
                    ":now": {"N": str(now)},
                    ":exp": {"N": str(now + EVENT_TTL_SECONDS)},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise CallbackStoreFailed(exc.response.get("Error", {}).get("Code", "")) from exc
            item: dict[str, Any] = dict(exc.response.get("Item") or {})
            if item.get("state", {}).get("S") == "delivered":
                return Claimed(Claim.DELIVERED)
            return Claimed(Claim.BUSY, int(item.get("lock_until", {}).get("N", "0")))
        except BotoCoreError as exc:
            raise CallbackStoreFailed(type(exc).__name__) from exc
        return Claimed(Claim.TAKEN)

    def delivered(self, webhook_id: str, *, now: int) -> None:
        self._update(
            webhook_id,
            "SET #state = :delivered, expiration = :exp REMOVE lock_until",
            {":delivered": {"S": "delivered"}, ":exp": {"N": str(now + EVENT_TTL_SECONDS)}},
        )

    def release(self, webhook_id: str) -> None:
        """The POST failed: the next copy of the message may try at once."""
        self._update(webhook_id, "SET lock_until = :zero", {":zero": {"N": "0"}})

    def switched_off(self, source: str) -> str | None:
        """The fingerprint of the source's callback that answered 410, or None."""
        try:
            item = self._client.get_item(
                TableName=self._table, Key={"id": {"S": f"{OFF_PREFIX}#{source}"}}, ConsistentRead=True
            ).get("Item")
        except (BotoCoreError, ClientError) as exc:
            raise CallbackStoreFailed(type(exc).__name__) from exc
        return item["fingerprint"]["S"] if item and "fingerprint" in item else None

    def switch_off(self, source: str, fingerprint: str, *, now: int) -> None:
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    "id": {"S": f"{OFF_PREFIX}#{source}"},
                    "fingerprint": {"S": fingerprint},
                    "switched_off_at": {"N": str(now)},
                    "expiration": {"N": str(now + OFF_TTL_SECONDS)},
                },
            )
        except (BotoCoreError, ClientError) as exc:
            raise CallbackStoreFailed(type(exc).__name__) from exc

    def take_slot(self, source: str, slots: Sequence[int], *, now: int, until: int) -> int | None:
        """One of `source`'s POST slots (its number), held until `until`; None when all are held."""
        for slot in slots:
            try:
                self._client.update_item(
                    TableName=self._table,
                    Key={"id": {"S": f"{SLOT_PREFIX}#{source}#{slot}"}},
                    UpdateExpression="SET lock_until = :until, expiration = :exp",
                    ConditionExpression="attribute_not_exists(id) OR lock_until < :now",
                    ExpressionAttributeValues={
                        ":until": {"N": str(until)},
                        ":now": {"N": str(now)},
                        ":exp": {"N": str(now + SLOT_TTL_SECONDS)},
                    },
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                    continue
                raise CallbackStoreFailed(exc.response.get("Error", {}).get("Code", "")) from exc
            except BotoCoreError as exc:
                raise CallbackStoreFailed(type(exc).__name__) from exc
            return slot
        return None

    def free_slot(self, source: str, slot: int) -> None:
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"id": {"S": f"{SLOT_PREFIX}#{source}#{slot}"}},
                UpdateExpression="SET lock_until = :zero",
                ExpressionAttributeValues={":zero": {"N": "0"}},
            )
        except (BotoCoreError, ClientError) as exc:
            raise CallbackStoreFailed(type(exc).__name__) from exc

    def _update(self, webhook_id: str, expression: str, values: dict[str, Any]) -> None:
        names = {"ExpressionAttributeNames": {"#state": "state"}} if "#state" in expression else {}
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"id": {"S": f"{EVENT_PREFIX}#{webhook_id}"}},
                UpdateExpression=expression,
                ExpressionAttributeValues=values,
                **names,  # type: ignore[arg-type]
            )
        except (BotoCoreError, ClientError) as exc:
            raise CallbackStoreFailed(type(exc).__name__) from exc
