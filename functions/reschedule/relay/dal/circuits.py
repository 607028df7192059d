"""The circuit per provider account: one small item, `circuit#<provider>#<account>`, in the
idempotency table (beside the pacing buckets), shared by every worker.

No item: closed. A counted failure trips it open (`open`, `next_probe_at`); while open, one
delivery at a time takes the probe lease (a conditional update: open, the next probe due, no live
lease) and makes one provider call; the rest of the account's backlog waits. A probe that reaches
the provider closes it (the item is deleted); one that fails trips it again for the next interval.
The policy (which failures count, how long to wait) is relay/reschedule/circuit.py's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from relay.ports import CircuitUnavailable, CircuitView

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# A closed account's item is gone; an open one's is removed by the table's TTL this long after its
# last failure (an account no one delivers to any more leaves nothing behind).
CIRCUIT_ITEM_TTL_SECONDS = 86400

_TAKE_PROBE = (
    "#open = :yes AND next_probe_at <= :now AND (attribute_not_exists(probe_lease) OR probe_until < :now)"
)


def _view(item: dict[str, Any]) -> CircuitView:
    return CircuitView(
        open=bool(item.get("open", {}).get("BOOL", False)),
        next_probe_at=int(item.get("next_probe_at", {}).get("N", "0")),
        probe_until=int(item.get("probe_until", {}).get("N", "0")),
        failures=int(item.get("failures", {}).get("N", "0")),
    )


def _unavailable(exc: Exception) -> CircuitUnavailable:
    if isinstance(exc, ClientError):
        return CircuitUnavailable(exc.response.get("Error", {}).get("Code", ""))
    return CircuitUnavailable(type(exc).__name__)


class CircuitStore:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def read(self, key: str) -> CircuitView | None:
        try:
            answer = self._client.get_item(TableName=self._table, Key={"id": {"S": key}}, ConsistentRead=True)
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable(exc) from None
        item = answer.get("Item")
        return None if item is None else _view(item)

    def take_probe(self, key: str, token: str, *, now: int, until: int) -> CircuitView | None:
        """The probe lease until `until`: None when taken, else the circuit as found (not our turn)."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"id": {"S": key}},
                UpdateExpression="SET probe_lease = :token, probe_until = :until",
                ConditionExpression=_TAKE_PROBE,
                ExpressionAttributeNames={"#open": "open"},
                ExpressionAttributeValues={
                    ":token": {"S": token},
                    ":until": {"N": str(until)},
                    ":now": {"N": str(now)},
                    ":yes": {"BOOL": True},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise _unavailable(exc) from None
            item = exc.response.get("Item")
            return CircuitView(False, 0, 0, 0) if item is None else _view(item)
        except BotoCoreError as exc:
            raise _unavailable(exc) from None
        return None

    def trip(self, key: str, *, now: int, next_probe_at: int) -> None:
        """A counted failure: open until `next_probe_at`, any probe lease ended."""
        self._update(
            key,
            "SET #open = :yes, next_probe_at = :next, expiration = :exp ADD failures :one "
            "REMOVE probe_lease, probe_until",
            {
                ":yes": {"BOOL": True},
                ":next": {"N": str(next_probe_at)},
                ":exp": {"N": str(now + CIRCUIT_ITEM_TTL_SECONDS)},
                ":one": {"N": "1"},
            },
            names={"#open": "open"},
        )

    def close(self, key: str) -> None:
        try:
            self._client.delete_item(TableName=self._table, Key={"id": {"S": key}})
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable(exc) from None

    def release_probe(self, key: str, token: str) -> None:
        """A probe lease given back unused (no call went out); someone else's lease is left alone."""
        try:
            self._update(
                key,
                "REMOVE probe_lease, probe_until",
                {":token": {"S": token}},
                condition="probe_lease = :token",
            )
        except CircuitUnavailable as exc:
            if str(exc) != "ConditionalCheckFailedException":
                raise

    def _update(
        self,
        key: str,
        expression: str,
        values: dict[str, Any],
        *,
        condition: str | None = None,
        names: dict[str, str] | None = None,
    ) -> None:
        request: dict[str, Any] = {
            "TableName": self._table,
            "Key": {"id": {"S": key}},
            "UpdateExpression": expression,
            "ExpressionAttributeValues": values,
        }
        if condition:
            request["ConditionExpression"] = condition
        if names:
            request["ExpressionAttributeNames"] = names
        try:
            self._client.update_item(**request)
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable(exc) from None
