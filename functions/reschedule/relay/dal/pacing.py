"""The pacing bucket: one small item per provider account in the idempotency table, shared by every
container (GCRA with zero burst).

The item `pace#<provider>#<account>` holds `tat`, the next time (epoch ms) a call may go out. A
grant is one conditional UpdateItem: `tat = now + interval` when `tat <= now`. When the bucket is
busy, a short wait is bought as a reservation of the next slot (`tat = tat + interval` when
`now < tat <= horizon`): the caller then sleeps until its slot, with no further call. A refusal
returns the item as it was (ReturnValuesOnConditionCheckFailure), so it tells the wait for free.
Grants are at least `interval` apart, so no 60 s window ever holds more than 60 / interval of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from relay.errors import RelayError, unavailable
from relay.ports import pace_key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# An idle account's item is removed by the table's TTL this long after its last grant.
PACE_ITEM_TTL_SECONDS = 86400
# Attempts at one take when the bucket changes between the two kinds of update (idle <-> busy).
MAX_TAKE_ROUNDS = 3

__all__ = ["PaceBucket", "Take", "pace_key", "pacing_unavailable"]

_GRANT = "attribute_not_exists(tat) OR tat <= :now"
_HOLD = "attribute_not_exists(tat) OR tat < :until"
_RESERVE = "tat > :now AND tat <= :horizon"


PACING_UNAVAILABLE_CODE = "pacing_unavailable"
PACING_RETRY_AFTER_SECONDS = 2


def pacing_unavailable(cause: str) -> RelayError:
    """DynamoDB did not answer the pacing bucket: no call goes out unpaced."""
    return unavailable(
        f"The relay's pacing store is unavailable ({cause}); try again shortly.",
        PACING_UNAVAILABLE_CODE,
        PACING_RETRY_AFTER_SECONDS,
    )


@dataclass(frozen=True)
class Take:
    """The outcome of one take: `slot_ms` is when the caller may call (now or a reserved slot);
    None means refused, and `next_free_ms` is the bucket's next free time."""

    slot_ms: int | None
    next_free_ms: int
    calls: int


class PaceBucket:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name
        # The last `tat` seen per key: busy buckets are tried with a reservation first (one call).
        self._seen: dict[str, int] = {}

    def take(self, key: str, *, interval_ms: int, now_ms: int, horizon_ms: int) -> Take:
        """A slot no later than `horizon_ms`, or the refusal; one call when the guess is right."""
        busy = self._seen.get(key, 0) > now_ms and horizon_ms > now_ms
        calls = 0
        for _ in range(MAX_TAKE_ROUNDS):
            calls += 1
            if busy:
                old = self._update(
                    key,
                    "SET tat = tat + :interval, expiration = :exp",
                    _RESERVE,
                    interval_ms=interval_ms,
                    now_ms=now_ms,
                    horizon_ms=horizon_ms,
                )
                if old.granted:  # our slot is the old tat
                    self._seen[key] = old.tat + interval_ms
                    return Take(old.tat, old.tat + interval_ms, calls)
            else:
                old = self._update(
                    key,
                    "SET tat = :next, expiration = :exp",
                    _GRANT,
                    interval_ms=interval_ms,
                    now_ms=now_ms,
                    horizon_ms=horizon_ms,
                )
                if old.granted:
                    self._seen[key] = now_ms + interval_ms
                    return Take(now_ms, now_ms + interval_ms, calls)
            self._seen[key] = old.tat
            if old.tat > horizon_ms:
                return Take(None, old.tat, calls)
            busy = old.tat > now_ms  # the bucket changed kind since the guess: the other update fits
        return Take(None, max(old.tat, now_ms + interval_ms), calls)

    def hold(self, key: str, *, until_ms: int) -> None:
        """No slot before `until_ms` (the provider said it is blocking the account until then)."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"id": {"S": key}},
                UpdateExpression="SET tat = :until, expiration = :exp",
                ConditionExpression=_HOLD,
                ExpressionAttributeValues={
                    ":until": {"N": str(until_ms)},
                    ":exp": {"N": str(until_ms // 1000 + PACE_ITEM_TTL_SECONDS)},
                },
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise pacing_unavailable(exc.response.get("Error", {}).get("Code", "error")) from None
            return  # already held as long or longer
        except BotoCoreError as exc:
            raise pacing_unavailable(type(exc).__name__) from None
        self._seen[key] = until_ms

    def _update(
        self,
        key: str,
        expression: str,
        condition: str,
        *,
        interval_ms: int,
        now_ms: int,
        horizon_ms: int,
    ) -> _Old:
        values = {
            ":now": {"N": str(now_ms)},
            ":interval": {"N": str(interval_ms)},
            ":exp": {"N": str(now_ms // 1000 + PACE_ITEM_TTL_SECONDS)},
        }
        if "horizon" in condition:
            values[":horizon"] = {"N": str(horizon_ms)}
        else:
            values[":next"] = {"N": str(now_ms + interval_ms)}
            del values[":interval"]
        try:
            answer = self._client.update_item(
                TableName=self._table,
                Key={"id": {"S": key}},
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                ReturnValues="UPDATED_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise pacing_unavailable(exc.response.get("Error", {}).get("Code", "error")) from None
            item = exc.response.get("Item") or {}
            return _Old(False, int(item.get("tat", {}).get("N", "0")))
        except BotoCoreError as exc:
            raise pacing_unavailable(type(exc).__name__) from None
        attributes = answer.get("Attributes") or {}
        return _Old(True, int(attributes.get("tat", {}).get("N", "0")))


@dataclass(frozen=True)
class _Old:
    granted: bool
    tat: int
