"""History cursors: an opaque token, and where the next page starts kept in the relay's own store.

A booking's history index holds every source's attempts; a page filtered to one source ends where
DynamoDB stopped reading, which may be another source's attempt. Its key (that attempt's id and
time) never leaves the relay: the cursor is a random token naming a small item in the idempotency
table, `history-cursor#<token>`, that holds the position, the source and the booking it was issued
for, and its expiry. Another source, another booking, an expired or a made-up token: BadCursor.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from relay.errors import RelayError, unavailable
from relay.ports import BadCursor

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

CURSOR_PREFIX = "history-cursor"
# A cursor works this long after its page was read (and its item is then removed by the table's TTL).
CURSOR_TTL_SECONDS = 3600
# 24 random bytes: 32 URL-safe characters, unguessable.
CURSOR_TOKEN_BYTES = 24
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{32}$")
CURSOR_RETRY_AFTER_SECONDS = 2


def _unavailable() -> RelayError:
    return unavailable(
        "The relay's storage is unavailable; try again shortly.",
        "storage_unavailable",
        CURSOR_RETRY_AFTER_SECONDS,
    )


class HistoryCursors:
    def __init__(
        self, client: DynamoDBClient, table_name: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._client = client
        self._table = table_name
        self._clock = clock

    def issue(self, source: str, booking_key: str, start: Mapping[str, Any]) -> str:
        """A new cursor for `source`'s next page of `booking_key`, starting after `start` (an index key)."""
        token = secrets.token_urlsafe(CURSOR_TOKEN_BYTES)
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    "id": {"S": f"{CURSOR_PREFIX}#{token}"},
                    "source": {"S": source},
                    "booking_key": {"S": booking_key},
                    "start": {"S": json.dumps(start, sort_keys=True, separators=(",", ":"))},
                    "expiration": {"N": str(int(self._clock()) + CURSOR_TTL_SECONDS)},
                },
            )
        except (BotoCoreError, ClientError):
            raise _unavailable() from None
        return token

    def resume(self, cursor: str, source: str, booking_key: str) -> dict[str, Any]:
        """Where the page after `cursor` starts; BadCursor unless this source got it for this booking."""
        if not _TOKEN.match(cursor):
            raise BadCursor  # not one of ours: no read
        try:
            answer = self._client.get_item(
                TableName=self._table, Key={"id": {"S": f"{CURSOR_PREFIX}#{cursor}"}}, ConsistentRead=True
            )
        except (BotoCoreError, ClientError):
            raise _unavailable() from None
        item = answer.get("Item") or {}
        if (
            item.get("source", {}).get("S") != source
            or item.get("booking_key", {}).get("S") != booking_key
            or int(item.get("expiration", {}).get("N", "0")) <= self._clock()
        ):
            raise BadCursor
        start = json.loads(item["start"]["S"])
        if not isinstance(start, dict):
            raise BadCursor
        return start
