"""The reschedules table: one item per attempt, by id, and a history per (provider, booking)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from relay.errors import unavailable
from relay.ports import BadCursor, HistoryPage, RecordWriteFailed, booking_key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import PutTypeDef, QueryInputTypeDef

    from relay.dal.cursors import HistoryCursors

HISTORY_INDEX = "ByBooking"
# A source's attempts by time (GET /v1/reschedules: recent outcomes, e.g. a Zapier trigger's poll).
SOURCE_INDEX = "BySource"
# Reading a source's recent outcomes: at most this many queries (filtered by status) fill one page.
MAX_RECENT_QUERIES_PER_PAGE = 5
# A page is filtered by source after DynamoDB reads it: this many reads at most fill one page.
MAX_HISTORY_QUERIES_PER_PAGE = 5
READ_RETRY_AFTER_SECONDS = 2
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _to_dynamodb(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _to_dynamodb(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_dynamodb(v) for v in value]
    return value


def _from_dynamodb(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_dynamodb(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamodb(v) for v in value]
    return value


class RecordStore:
    def __init__(
        self, client: DynamoDBClient, table_name: str, *, cursors: HistoryCursors | None = None
    ) -> None:
        self._client = client
        self._table = table_name
        # Where history pages continue (relay/dal/cursors.py); without it, history_page has one page.
        self._cursors = cursors

    @property
    def table_name(self) -> str:
        return self._table

    def put_request(self, record: Mapping[str, Any]) -> PutTypeDef:
        """The PutItem parameters for one attempt (also used inside a transaction)."""
        return {
            "TableName": self._table,
            "Item": {k: _serializer.serialize(_to_dynamodb(v)) for k, v in record.items() if v is not None},
            "ConditionExpression": "attribute_not_exists(reschedule_id)",
        }

    def put(self, record: Mapping[str, Any]) -> None:
        try:
            self._client.put_item(**self.put_request(record))
        except (BotoCoreError, ClientError) as exc:
            raise RecordWriteFailed(type(exc).__name__) from exc

    def get(self, reschedule_id: str) -> dict[str, Any] | None:
        answer = self._client.get_item(
            TableName=self._table, Key={"reschedule_id": {"S": reschedule_id}}, ConsistentRead=True
        )
        item = answer.get("Item")
        return None if item is None else self.plain(item)

    def history(self, provider: str, booking_id: str, limit: int = 50) -> list[dict[str, Any]]:
        answer = self._client.query(
            TableName=self._table,
            IndexName=HISTORY_INDEX,
            KeyConditionExpression="booking_key = :k",
            ExpressionAttributeValues={":k": {"S": booking_key(provider, booking_id)}},
            ScanIndexForward=True,
            Limit=limit,
        )
        return [self.plain(item) for item in answer.get("Items", [])]

    def history_page(
        self, source: str, provider: str, booking_id: str, *, limit: int, cursor: str | None
    ) -> HistoryPage:
        """One source's attempts on one booking, newest first; raises BadCursor for a foreign cursor.

        The next page's cursor is opaque (relay/dal/cursors.py): where DynamoDB stopped reading may
        be another source's attempt, whose key never leaves the relay.
        """
        key = booking_key(provider, booking_id)
        start: Any = None
        if cursor:
            if self._cursors is None:
                raise BadCursor
            start = self._cursors.resume(cursor, source, key)
        items: list[dict[str, Any]] = []
        for _ in range(MAX_HISTORY_QUERIES_PER_PAGE):
            params: QueryInputTypeDef = {
                "TableName": self._table,
                "IndexName": HISTORY_INDEX,
                "KeyConditionExpression": "booking_key = :k",
                "FilterExpression": "#source = :s",
                "ExpressionAttributeNames": {"#source": "source"},
                "ExpressionAttributeValues": {":k": {"S": key}, ":s": {"S": source}},
                "ScanIndexForward": False,
                "Limit": limit - len(items),
            }
            if start:
                params["ExclusiveStartKey"] = start
            answer = self._client.query(**params)
            items.extend(self.plain(item) for item in answer.get("Items", []))
            start = answer.get("LastEvaluatedKey")
            if start is None or len(items) >= limit:
                break
        if start is None or self._cursors is None:
            return HistoryPage(items, None)
        return HistoryPage(items, self._cursors.issue(source, key, start))

    def recent(self, source: str, statuses: tuple[str, ...], *, limit: int) -> list[dict[str, Any]]:
        """The source's newest attempts whose status is one of `statuses`, newest first."""
        values: dict[str, Any] = {":s": {"S": source}}
        values |= {f":st{i}": {"S": status} for i, status in enumerate(statuses)}
        params: QueryInputTypeDef = {
            "TableName": self._table,
            "IndexName": SOURCE_INDEX,
            "KeyConditionExpression": "#source = :s",
            "FilterExpression": f"#status IN ({', '.join(f':st{i}' for i in range(len(statuses)))})",
            "ExpressionAttributeNames": {"#source": "source", "#status": "status"},
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
        }
        items: list[dict[str, Any]] = []
        try:
            for _ in range(MAX_RECENT_QUERIES_PER_PAGE):
                params["Limit"] = limit - len(items)
                answer = self._client.query(**params)
                items.extend(self.plain(item) for item in answer.get("Items", []))
                start = answer.get("LastEvaluatedKey")
                if start is None or len(items) >= limit:
                    break
                params["ExclusiveStartKey"] = start
        except (BotoCoreError, ClientError) as exc:
            raise unavailable(
                "The relay's storage is unavailable; try again shortly.",
                "storage_unavailable",
                READ_RETRY_AFTER_SECONDS,
            ) from exc
        return items[:limit]

    @staticmethod
    def plain(item: dict[str, Any]) -> dict[str, Any]:
        return {k: _from_dynamodb(_deserializer.deserialize(v)) for k, v in item.items()}
