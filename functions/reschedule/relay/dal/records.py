"""The reschedules table: one item per attempt, by id, and a history per (provider, booking)."""

from __future__ import annotations

import base64
import binascii
import json
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

HISTORY_INDEX = "ByBooking"
# A source's attempts by time (GET /v1/reschedules: recent outcomes, e.g. a Zapier trigger's poll).
SOURCE_INDEX = "BySource"
# Reading a source's recent outcomes: at most this many queries (filtered by status) fill one page.
MAX_RECENT_QUERIES_PER_PAGE = 5
# A page is filtered by source after DynamoDB reads it: this many reads at most fill one page.
MAX_HISTORY_QUERIES_PER_PAGE = 5
_CURSOR_KEYS = frozenset({"reschedule_id", "booking_key", "attempted_at"})
# A key value this store writes is an id, a timestamp or provider#account#booking (each part <= 64).
MAX_CURSOR_VALUE = 256
MAX_CURSOR_CHARACTERS = 1024
# Following a booking's recorded ids: at most this many hops, reading this many pages per id.
MAX_CHAIN_HOPS = 20
HISTORY_PAGE = 25
MAX_HISTORY_PAGES = 8
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


def _encode_cursor(key: Mapping[str, Any]) -> str:
    plain = {k: v["S"] for k, v in key.items()}
    return base64.urlsafe_b64encode(json.dumps(plain, sort_keys=True).encode()).decode().rstrip("=")


def _cursor_value(value: Any) -> bool:
    """A key value as this store writes them: text, bounded, that encodes (no lone surrogates)."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_CURSOR_VALUE:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _decode_cursor(cursor: str, expected_booking_key: str) -> dict[str, Any]:
    if len(cursor) > MAX_CURSOR_CHARACTERS:  # larger than any this store hands out
        raise BadCursor
    try:
        plain = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise BadCursor from None
    if (
        not isinstance(plain, dict)
        or set(plain) != _CURSOR_KEYS
        or not all(_cursor_value(v) for v in plain.values())
        or plain["booking_key"] != expected_booking_key
    ):
        raise BadCursor
    return {k: {"S": v} for k, v in plain.items()}


class RecordStore:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

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

    def latest_booking_id(self, provider: str, booking_id: str) -> str | None:
        """The id the last recorded successful move of this booking created, following the chain.

        Only providers that give a booking a new id per move (Cal.com) record `new_booking_id`.
        """
        latest, hops = booking_id, 0
        while hops < MAX_CHAIN_HOPS:
            newer = self._newest_move(provider, latest)
            if newer is None or newer == latest:
                break
            latest, hops = newer, hops + 1
        return latest if latest != booking_id else None

    def _newest_move(self, provider: str, booking_id: str) -> str | None:
        query: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": HISTORY_INDEX,
            "KeyConditionExpression": "booking_key = :k",
            "FilterExpression": "#s = :ok AND attribute_exists(new_booking_id)",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {
                ":k": {"S": booking_key(provider, booking_id)},
                ":ok": {"S": "succeeded"},
            },
            "ProjectionExpression": "new_booking_id",
            "ScanIndexForward": False,  # newest first
            "Limit": HISTORY_PAGE,
        }
        try:
            for _ in range(MAX_HISTORY_PAGES):
                answer = self._client.query(**query)
                for item in answer.get("Items", []):
                    value = item.get("new_booking_id", {}).get("S")
                    if value:
                        return value
                if "LastEvaluatedKey" not in answer:
                    return None
                query["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
        except (BotoCoreError, ClientError) as exc:
            raise unavailable(
                "The relay's storage is unavailable; try again shortly.",
                "storage_unavailable",
                READ_RETRY_AFTER_SECONDS,
            ) from exc
        return None

    def history_page(
        self, source: str, provider: str, booking_id: str, *, limit: int, cursor: str | None
    ) -> HistoryPage:
        """One source's attempts on one booking, newest first; raises BadCursor for a foreign cursor."""
        key = booking_key(provider, booking_id)
        start = _decode_cursor(cursor, key) if cursor else None
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
        return HistoryPage(items, _encode_cursor(start) if start else None)

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
