"""Quota counters per source, in the idempotency table (like the pacing buckets).

Each counter is a small item holding one member per idempotency key (`quota_member`), added with a
conditional UpdateItem: the key is already there (a replay: nothing changes), or there is room.
So a replay never counts against a quota, and a count needs no read.

- `quota#rate#<source>#<epoch minute>`: new reschedule requests in that minute;
- `quota#moves#<source>#<provider>#<booking id>#<UTC day>`: new moves of one booking that day;
- `quota#backlog#<source>`: its requests waiting in the queue; the ledger takes a key out in the
  same transaction that ends its queued state (delivered, undelivered, cancelled).

Rate, moves and (for an async request) the backlog place are one TransactWriteItems (one round
trip); its cancellation reasons say which quota is full. Every item expires (TTL) after its window.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from relay.errors import RelayError, unavailable
from relay.ports import QuotaExceeded, SourceQuotas, backlog_key, quota_member

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

MINUTE_SECONDS = 60
DAY_SECONDS = 86400
# A backlog item outlives its last change by this long (a key lost by a crash ages out with it).
BACKLOG_TTL_SECONDS = 8 * DAY_SECONDS
# A full backlog drains at the delivery rate: ask again after this long.
BACKLOG_RETRY_AFTER_SECONDS = 60
QUOTA_RETRY_AFTER_UNAVAILABLE_SECONDS = 2

_ROOM = "attribute_not_exists(#keys) OR contains(#keys, :member) OR size(#keys) < :limit"


def _unavailable() -> RelayError:
    return unavailable(
        "The relay's quota store is unavailable; try again shortly.",
        "storage_unavailable",
        QUOTA_RETRY_AFTER_UNAVAILABLE_SECONDS,
    )


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class QuotaCounters:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def count(
        self,
        source: str,
        item_id: str,
        *,
        provider: str,
        booking_id: str,
        quotas: SourceQuotas,
        now: float,
        queued: bool = False,
    ) -> None:
        """Count a new request (rate) and a new move of its booking (per day), and with `queued` take
        its place in the backlog, in one transaction; QuotaExceeded names the first full one."""
        minute = int(now) // MINUTE_SECONDS
        moment = datetime.fromtimestamp(now, tz=UTC)
        next_day = datetime.combine(moment.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        until_tomorrow = max(1, int(next_day.timestamp() - now))
        counted: list[tuple[str, int, TransactWriteItemTypeDef]] = []
        if quotas.requests_per_minute is not None:
            end = (minute + 1) * MINUTE_SECONDS
            rate = self._add(f"quota#rate#{source}#{minute}", item_id, quotas.requests_per_minute, end)
            counted.append(("requests_per_minute", max(1, end - int(now)), rate))
        if quotas.moves_per_booking_per_day is not None:
            key = f"quota#moves#{source}#{provider}#{booking_id}#{moment.date().isoformat()}"
            end = int(next_day.timestamp())
            moves = self._add(key, item_id, quotas.moves_per_booking_per_day, end)
            counted.append(("moves_per_booking_per_day", until_tomorrow, moves))
        if queued and quotas.queued_backlog is not None:
            backlog = self._add(
                backlog_key(source), item_id, quotas.queued_backlog, int(now) + BACKLOG_TTL_SECONDS
            )
            counted.append(("queued_backlog", BACKLOG_RETRY_AFTER_SECONDS, backlog))
        if not counted:
            return
        try:
            self._client.transact_write_items(TransactItems=[item for _, _, item in counted])
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons") or []
            if _error_code(exc) != "TransactionCanceledException" or not reasons:
                raise _unavailable() from None
            for (quota, retry_after, _), reason in zip(counted, reasons, strict=False):
                if reason.get("Code") == "ConditionalCheckFailed":
                    raise QuotaExceeded(quota, retry_after) from None
            raise _unavailable() from None  # cancelled for another reason (a conflict, throttling)
        except BotoCoreError:
            raise _unavailable() from None

    def enter_backlog(self, source: str, item_id: str, *, quotas: SourceQuotas, now: float) -> None:
        """Take a place in the source's queued backlog for this key (again: no change)."""
        if quotas.queued_backlog is None:
            return
        update = self._add(
            backlog_key(source), item_id, quotas.queued_backlog, int(now) + BACKLOG_TTL_SECONDS
        )
        try:
            self._client.update_item(**update["Update"])
        except ClientError as exc:
            if _error_code(exc) == "ConditionalCheckFailedException":
                raise QuotaExceeded("queued_backlog", BACKLOG_RETRY_AFTER_SECONDS) from None
            raise _unavailable() from None
        except BotoCoreError:
            raise _unavailable() from None

    def leave_backlog(self, source: str, item_id: str) -> None:
        """Give the place back (the request was not queued after all); best effort: it ages out."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"id": {"S": backlog_key(source)}},
                UpdateExpression="DELETE #keys :members",
                ConditionExpression="attribute_exists(#keys)",
                ExpressionAttributeNames={"#keys": "keys"},
                ExpressionAttributeValues={":members": {"SS": [quota_member(item_id)]}},
            )
        except (BotoCoreError, ClientError):
            return

    def _add(self, key: str, item_id: str, limit: int, expires_at: int) -> Any:
        member = quota_member(item_id)
        return {
            "Update": {
                "TableName": self._table,
                "Key": {"id": {"S": key}},
                "UpdateExpression": "ADD #keys :members SET #expiry = :expiry",
                "ConditionExpression": _ROOM,
                "ExpressionAttributeNames": {"#keys": "keys", "#expiry": "expiration"},
                "ExpressionAttributeValues": {
                    ":members": {"SS": [member]},
                    ":member": {"S": member},
                    ":limit": {"N": str(limit)},
                    ":expiry": {"N": str(expires_at + MINUTE_SECONDS)},
                },
            }
        }
