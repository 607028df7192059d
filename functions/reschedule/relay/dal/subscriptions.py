"""A source's event subscriptions (REST hooks, e.g. a Zapier trigger), in the idempotency table.

One item per source, `subscriptions#<source>`, holding a map `subs` of subscription id ->
{url, events, secret, created_at}: one GetItem reads all of a source's subscriptions (done at each
final outcome), and the bound per source is a condition on the map's size, so two concurrent
subscribes cannot pass it together. The `secret` signs the events (Standard Webhooks) and is
needed at every send; it leaves this module only inside a `StoredSubscription`, whose repr hides it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from relay.ports import (
    MAX_SUBSCRIPTIONS_PER_SOURCE,
    StoredSubscription,
    SubscriptionItem,
    SubscriptionStoreFailed,
    TooManySubscriptions,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

ITEM_PREFIX = "subscriptions"


def _key(source: str) -> dict[str, Any]:
    return {"id": {"S": f"{ITEM_PREFIX}#{source}"}}


def _from_attribute(sub_id: str, value: dict[str, Any]) -> StoredSubscription:
    fields = value["M"]
    return StoredSubscription(
        id=sub_id,
        url=fields["url"]["S"],
        events=tuple(event["S"] for event in fields["events"]["L"]),
        created_at=fields["created_at"]["S"],
        secret=fields["secret"]["S"],
    )


class SubscriptionStore:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def of_source(self, source: str) -> list[StoredSubscription]:
        """The source's subscriptions, oldest first."""
        try:
            item = self._client.get_item(TableName=self._table, Key=_key(source), ConsistentRead=True).get(
                "Item"
            )
        except (BotoCoreError, ClientError) as exc:
            raise SubscriptionStoreFailed(type(exc).__name__) from exc
        subs = (item or {}).get("subs", {}).get("M", {})
        found = [_from_attribute(sub_id, value) for sub_id, value in subs.items()]
        return sorted(found, key=lambda sub: (sub.created_at, sub.id))

    def get(self, source: str, sub_id: str) -> StoredSubscription | None:
        return next((sub for sub in self.of_source(source) if sub.id == sub_id), None)

    def add(self, source: str, sub_id: str, item: SubscriptionItem) -> None:
        """Store one more subscription; TooManySubscriptions when the source is at its bound."""
        value = {
            "M": {
                "url": {"S": item["url"]},
                "events": {"L": [{"S": event} for event in item["events"]]},
                "secret": {"S": item["secret"]},
                "created_at": {"S": item["created_at"]},
            }
        }
        try:
            # The map must exist before a member can be set in it.
            self._client.update_item(
                TableName=self._table,
                Key=_key(source),
                UpdateExpression="SET subs = if_not_exists(subs, :empty)",
                ExpressionAttributeValues={":empty": {"M": {}}},
            )
            self._client.update_item(
                TableName=self._table,
                Key=_key(source),
                UpdateExpression="SET subs.#id = :sub",
                ConditionExpression="size(subs) < :max",
                ExpressionAttributeNames={"#id": sub_id},
                ExpressionAttributeValues={":sub": value, ":max": {"N": str(MAX_SUBSCRIPTIONS_PER_SOURCE)}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise TooManySubscriptions from None
            raise SubscriptionStoreFailed(exc.response.get("Error", {}).get("Code", "")) from exc
        except BotoCoreError as exc:
            raise SubscriptionStoreFailed(type(exc).__name__) from exc

    def remove(self, source: str, sub_id: str) -> bool:
        """Delete one subscription of the source; False when it has no such subscription."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key=_key(source),
                UpdateExpression="REMOVE subs.#id",
                ConditionExpression="attribute_exists(subs.#id)",
                ExpressionAttributeNames={"#id": sub_id},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise SubscriptionStoreFailed(exc.response.get("Error", {}).get("Code", "")) from exc
        except BotoCoreError as exc:
            raise SubscriptionStoreFailed(type(exc).__name__) from exc
        return True
