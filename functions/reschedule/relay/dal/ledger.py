"""The exactly-once ledger: the idempotency item's shape and every write to it, for both doors.

One item per scoped key in the idempotency table. Its states, and who moves them (docs/ledger.md):

    (none) --take--> IN_PROGRESS --complete--> COMPLETED: a success answer
    IN_PROGRESS --release--> (none): the caller's retry runs again
    IN_PROGRESS --complete_queued--> COMPLETED: the 202 answer, until the worker's outcome:
        --delivered--> COMPLETED: a success answer;  --undelivered / cancel--> (none)
    IN_PROGRESS past its lock, or any item past its expiry --take--> IN_PROGRESS (a new owner)
    COMPLETED success, content-keyed, no longer the booking's last move --take--> IN_PROGRESS

Every completion or release writes the attempt record in the same transaction, so a key never ends
without its record; a success also writes the booking's last move (which content-keyed repeats
check: A -> B -> A moves the booking back) and, when the provider gave the booking a new id
(Cal.com), the chain item `chain#<provider>#<booking id>` -> that new id, which the attempt step
follows (`latest_booking_id`) instead of scanning the booking's shared history. A queued request's
worker holds a per-delivery lock on its attempt record (`delivery_lock`) and marks it `sending` right
before each provider call (a conditional write that fails once the record was cancelled or a stop
asked for). A cancel ends a queued record at once unless a call is under way; then it notes the stop
(`stop_requested`) and the delivery ends the record: `succeeded` if that call moved the booking,
else cancelled. Every end of a queued record gives its place in the source's backlog back.

The item keeps the attribute names and key hashing of the Powertools idempotency utility the relay
used before, so items already in a deployed table stay readable (docs/deploying.md).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from relay.dal.quotas import BACKLOG_TTL_SECONDS
from relay.dal.records import RecordStore
from relay.errors import unavailable
from relay.ports import (
    Answered,
    Claim,
    KeyInProgress,
    KeyReused,
    LedgerKey,
    LedgerUnavailable,
    LockNotHeld,
    Stopping,
    backlog_key,
    chain_key,
    quota_member,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

# The item's attributes (the names Powertools' DynamoDB layer used: deployed items stay readable).
KEY_ATTR = "id"
EXPIRY_ATTR = "expiration"  # epoch seconds; the table's TTL attribute
LOCK_EXPIRY_ATTR = "in_progress_expiration"  # epoch milliseconds
STATUS_ATTR = "status"
ANSWER_ATTR = "data"  # the stored answer, JSON, in the order it was first given
PAYLOAD_HASH_ATTR = "validation"
# A queued request's personal fields (JSON), kept with its key instead of in the queue message.
PERSONAL_ATTR = "personal"
IN_PROGRESS = "INPROGRESS"
COMPLETED = "COMPLETED"
# Released after an attempt whose outcome is unknown: free to take, and its taker reads first.
UNSETTLED = "UNSETTLED"
KEY_PREFIX = "reschedule"

CHAIN_READ_RETRY_AFTER_SECONDS = 2
# An async request that takes over a stale content-keyed answer holds it this long at most.
TAKE_OVER_LOCK_SECONDS = 30

# Following a booking's recorded ids: at most this many hops (one read each).
MAX_CHAIN_HOPS = 20
CHAIN_NEW_ID_ATTR = "new_booking_id"

LAST_MOVE_PREFIX = "last-move"
LAST_MOVE_KEY_ATTR = "move_key"

_LOCK_FREE = "(attribute_not_exists(delivery_lock) OR delivery_lock_expires < :now)"
# A provider call may be under way: the delivery holding the lock marked the record before sending.
_NOT_SENDING = (
    "(attribute_not_exists(sending) OR attribute_not_exists(delivery_lock) OR delivery_lock_expires < :now)"
)
_SENDING = "(attribute_exists(sending) AND delivery_lock_expires >= :now)"
# The attributes the delivery protocol adds to a queued record (never in an answer).
SENDING_ATTR = "sending"
STOP_ATTR = "stop_requested"
_TAKE_CONDITION = (
    "attribute_not_exists(#id) OR #expiry < :now OR #status = :unsettled OR "
    "(#status = :in_progress AND attribute_exists(#lock) AND #lock < :now_ms)"
)


def _hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def last_move_id(source: str, provider: str, booking_id: str) -> str:
    return f"{LAST_MOVE_PREFIX}#{source}#{provider}#{booking_id}"


def ledger_key(
    scoped_key: str, payload: Any, *, source: str, provider: str, booking_id: str, content_keyed: bool
) -> LedgerKey:
    """`scoped_key` is already scoped by source (`<source>|header:<key>` or `<source>|command:<hash>`)."""
    return LedgerKey(
        item_id=f"{KEY_PREFIX}#{_hash(scoped_key)}",
        payload_hash=_hash(payload),
        last_move_id=last_move_id(source, provider, booking_id),
        content_keyed=content_keyed,
    )


def _take_values(now: float) -> dict[str, Any]:
    return {
        ":now": {"N": str(int(now))},
        ":now_ms": {"N": str(int(now * 1000))},
        ":in_progress": {"S": IN_PROGRESS},
        ":unsettled": {"S": UNSETTLED},
    }


def _conditional_failure(exc: ClientError) -> bool:
    error = exc.response.get("Error", {}).get("Code", "")
    if error == "ConditionalCheckFailedException":
        return True
    reasons = exc.response.get("CancellationReasons") or []
    return error == "TransactionCanceledException" and any(
        r.get("Code") == "ConditionalCheckFailed" for r in reasons
    )


class _KeyTaken(Exception):
    """The key's conditional write failed inside a transaction (read the item to say why)."""


class Ledger:
    def __init__(self, client: DynamoDBClient, table_name: str, records: RecordStore) -> None:
        self._client = client
        self._table = table_name
        self._records = records

    # -- the key ------------------------------------------------------------------------------------

    @staticmethod
    def key(
        scoped_key: str, payload: Any, *, source: str, provider: str, booking_id: str, content_keyed: bool
    ) -> LedgerKey:
        return ledger_key(
            scoped_key,
            payload,
            source=source,
            provider=provider,
            booking_id=booking_id,
            content_keyed=content_keyed,
        )

    def take(self, key: LedgerKey, *, now: float, lock_seconds: float, expires_at: int) -> Claim | Answered:
        """One conditional put: the key is free (or its holder's lock ran out), or it has an answer.

        Raises KeyReused (another payload), KeyInProgress, LedgerUnavailable.
        """
        item = {
            KEY_ATTR: {"S": key.item_id},
            EXPIRY_ATTR: {"N": str(expires_at)},
            LOCK_EXPIRY_ATTR: {"N": str(int((now + lock_seconds) * 1000))},
            STATUS_ATTR: {"S": IN_PROGRESS},
            PAYLOAD_HASH_ATTR: {"S": key.payload_hash},
        }
        try:
            taken = self._client.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression=_TAKE_CONDITION,
                ExpressionAttributeNames={
                    "#id": KEY_ATTR,
                    "#expiry": EXPIRY_ATTR,
                    "#status": STATUS_ATTR,
                    "#lock": LOCK_EXPIRY_ATTR,
                },
                ExpressionAttributeValues=_take_values(now),
                # The item it replaced (free of charge): an unsettled one makes its taker read first.
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not _conditional_failure(exc):
                raise LedgerUnavailable(exc.response.get("Error", {}).get("Code", "")) from exc
            old = exc.response.get("Item") or self._read(key.item_id)
            if old is None:  # released between the put and the read: busy a moment ago, ask again
                raise KeyInProgress from None
            return self._existing(key, old, item)
        except BotoCoreError as exc:
            raise LedgerUnavailable(type(exc).__name__) from exc
        replaced = taken.get("Attributes", {}).get(STATUS_ATTR, {}).get("S")
        return Claim(key, settle_first=replaced == UNSETTLED)

    def accept_queued(
        self,
        key: LedgerKey,
        answer: Mapping[str, Any],
        record: Mapping[str, Any],
        *,
        now: float,
        expires_at: int,
        personal: Mapping[str, Any] | None = None,
    ) -> Claim | Answered | None:
        """Take a free key straight to its 202 answer with the queued record: one transaction, the
        order already sent. None: accepted. Else the key was not free: what it holds (Answered), or a
        stale content-keyed success taken over (Claim: complete it as queued). Raises as `take`.
        `personal`: the command's personal fields, kept here (not in the queue) until the request ends."""
        item = {
            KEY_ATTR: {"S": key.item_id},
            EXPIRY_ATTR: {"N": str(expires_at)},
            STATUS_ATTR: {"S": COMPLETED},
            ANSWER_ATTR: {"S": json.dumps(answer, separators=(",", ":"))},
            PAYLOAD_HASH_ATTR: {"S": key.payload_hash},
        }
        if personal:
            item[PERSONAL_ATTR] = {"S": json.dumps(personal, separators=(",", ":"))}
        put: TransactWriteItemTypeDef = {
            "Put": {
                "TableName": self._table,
                "Item": item,
                "ConditionExpression": _TAKE_CONDITION,
                "ExpressionAttributeNames": {
                    "#id": KEY_ATTR,
                    "#expiry": EXPIRY_ATTR,
                    "#status": STATUS_ATTR,
                    "#lock": LOCK_EXPIRY_ATTR,
                },
                "ExpressionAttributeValues": _take_values(now),
            }
        }
        try:
            self._transact(put, {"Put": self._records.put_request(record)}, conditional=_KeyTaken)
        except _KeyTaken:
            old = self._read(key.item_id)
            if old is None:  # released between the write and the read: busy a moment ago
                raise KeyInProgress from None
            # A take-over holds the key only while this request completes it as queued.
            taken = {
                **item,
                STATUS_ATTR: {"S": IN_PROGRESS},
                LOCK_EXPIRY_ATTR: {"N": str(int((now + TAKE_OVER_LOCK_SECONDS) * 1000))},
            }
            del taken[ANSWER_ATTR]
            taken.pop(PERSONAL_ATTR, None)
            return self._existing(key, old, taken)
        return None

    def answered_by(self, item_id: str) -> str | None:
        """The reschedule id whose answer the key holds (None: no answer yet, or no item)."""
        item = self._read(item_id)
        if item is None or item.get(STATUS_ATTR, {}).get("S") != COMPLETED:
            return None
        try:
            answer = json.loads(item.get(ANSWER_ATTR, {}).get("S", ""))
        except ValueError:
            return None
        owner = answer.get("reschedule_id") if isinstance(answer, dict) else None
        return str(owner) if owner else None

    def _existing(self, key: LedgerKey, old: Mapping[str, Any], item: dict[str, Any]) -> Claim | Answered:
        if old.get(PAYLOAD_HASH_ATTR, {}).get("S", key.payload_hash) != key.payload_hash:
            raise KeyReused
        if old.get(STATUS_ATTR, {}).get("S") != COMPLETED:
            raise KeyInProgress
        try:
            answer = json.loads(old.get(ANSWER_ATTR, {}).get("S", ""))
        except ValueError:
            raise KeyInProgress from None  # an item this ledger did not write: treated as held
        if key.content_keyed and answer.get("status") == "succeeded" and not self._is_last_move(key):
            return self._take_over(key, old, item)
        return Answered(answer)

    def _is_last_move(self, key: LedgerKey) -> bool:
        """The one extra read, on the content-keyed replay path only."""
        last = self._read(key.last_move_id)
        return last is not None and last.get(LAST_MOVE_KEY_ATTR, {}).get("S") == key.item_id

    def _take_over(self, key: LedgerKey, old: Mapping[str, Any], item: dict[str, Any]) -> Claim | Answered:
        """Re-take a stale success, only if no one changed it since it was read."""
        try:
            self._client.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression="#status = :completed AND #expiry = :old_expiry",
                ExpressionAttributeNames={"#status": STATUS_ATTR, "#expiry": EXPIRY_ATTR},
                ExpressionAttributeValues={
                    ":completed": {"S": COMPLETED},
                    ":old_expiry": old[EXPIRY_ATTR],
                },
            )
        except ClientError as exc:
            if _conditional_failure(exc):
                raise KeyInProgress from None  # someone else took it over meanwhile
            raise LedgerUnavailable(exc.response.get("Error", {}).get("Code", "")) from exc
        except BotoCoreError as exc:
            raise LedgerUnavailable(type(exc).__name__) from exc
        return Claim(key)

    def _read(self, item_id: str) -> dict[str, Any] | None:
        try:
            answer = self._client.get_item(
                TableName=self._table, Key={KEY_ATTR: {"S": item_id}}, ConsistentRead=True
            )
        except (BotoCoreError, ClientError) as exc:
            raise LedgerUnavailable(type(exc).__name__) from exc
        return answer.get("Item")

    def complete(
        self, claim: Claim, answer: Mapping[str, Any], record: Mapping[str, Any], *, expires_at: int
    ) -> None:
        """A success: the answer, the attempt record and the booking's last move, in one transaction."""
        self._transact(
            # The last move first: a store that applies items in order never shows the answer without it.
            self._last_move_put(claim.key.last_move_id, claim.key.item_id, record, expires_at),
            self._answer_update(claim.key.item_id, answer, expires_at),
            {"Put": self._records.put_request(record)},
            *self._chain_put(record),
        )

    def complete_queued(
        self,
        claim: Claim,
        answer: Mapping[str, Any],
        record: Mapping[str, Any],
        *,
        expires_at: int,
        personal: Mapping[str, Any] | None = None,
    ) -> None:
        """Accepted for the queue: the 202 answers repeats until the worker replaces it."""
        self._transact(
            self._answer_update(claim.key.item_id, answer, expires_at, personal=personal),
            {"Put": self._records.put_request(record)},
        )

    def personal(self, item_id: str) -> dict[str, Any] | None:
        """A queued request's personal fields (None: it had none, or it has ended)."""
        item = self._read(item_id)
        raw = item.get(PERSONAL_ATTR, {}).get("S") if item is not None else None
        if raw is None:
            return None
        fields = json.loads(raw)
        return fields if isinstance(fields, dict) else None

    def release(self, claim: Claim, record: Mapping[str, Any], *, unsettled: bool = False) -> None:
        """A failure the caller may retry: the key is freed and the attempt recorded, in one transaction.

        `unsettled`: the attempt's outcome is unknown (a lost answer the provider's read could not
        settle): the key stays, free, marked so that the caller's retry reads the booking first.
        """
        free = self._unsettle(claim.key.item_id) if unsettled else self._delete_key(claim.key.item_id)
        self._transact(free, {"Put": self._records.put_request(record)})

    def release_quietly(self, claim: Claim) -> None:
        """Free a key whose answer could not be stored (best effort: else its lock runs out)."""
        try:
            self._client.delete_item(TableName=self._table, Key={KEY_ATTR: {"S": claim.key.item_id}})
        except (BotoCoreError, ClientError):
            return

    # -- a queued request's delivery ----------------------------------------------------------------

    def read_record(self, reschedule_id: str) -> dict[str, Any] | None:
        try:
            return self._records.get(reschedule_id)
        except (BotoCoreError, ClientError) as exc:
            raise LedgerUnavailable(type(exc).__name__) from exc

    def lock_delivery(self, reschedule_id: str, token: str, *, now: int, until: int) -> None:
        """Lock a queued record for one delivery attempt, until `until` (epoch seconds)."""
        self._write(
            self._client.update_item,
            TableName=self._records.table_name,
            Key={"reschedule_id": {"S": reschedule_id}},
            # A `sending` mark left by a delivery that died mid-call is not this one's.
            UpdateExpression=(
                f"SET delivery_lock = :token, delivery_lock_expires = :until REMOVE {SENDING_ATTR}"
            ),
            ConditionExpression=f"#status = :queued AND {_LOCK_FREE}",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":token": {"S": token},
                ":until": {"N": str(until)},
                ":now": {"N": str(now)},
                ":queued": {"S": "queued"},
            },
        )

    def progress(self, record: Mapping[str, Any], token: str) -> None:
        """Replace the locked record with its next state (still queued); the lock goes with it.
        LockNotHeld too when a stop was asked for meanwhile (the delivery then ends it)."""
        put = self._locked_put(record, token)
        put["ConditionExpression"] += f" AND attribute_not_exists({STOP_ATTR})"
        self._write(self._client.put_item, **put)

    def delivered(
        self,
        record: Mapping[str, Any],
        token: str,
        *,
        item_id: str,
        answer: Mapping[str, Any],
        expires_at: int,
    ) -> None:
        """The worker's success: the key answers repeats with the success answer, with its last move."""
        last_move = last_move_id(
            str(record.get("source")), str(record.get("provider")), str(record.get("booking_id"))
        )
        self._transact(
            self._last_move_put(last_move, item_id, record, expires_at),
            self._answer_update(item_id, answer, expires_at),
            {"Put": self._locked_put(record, token)},
            *self._chain_put(record),
            self._backlog_leave(record, item_id),
            conditional=LockNotHeld,
        )

    def undelivered(self, record: Mapping[str, Any], token: str, *, item_id: str) -> None:
        """The worker's final failure: the key is released so the caller's retry runs again."""
        self._transact(
            self._delete_key(item_id),
            {"Put": self._locked_put(record, token)},
            self._backlog_leave(record, item_id),
            conditional=LockNotHeld,
        )

    def cancel(self, record: Mapping[str, Any], *, item_id: str, now: int) -> None:
        """End a queued record with `record` (cancelled, or failed by a revocation), its key released.

        No provider call under way: done, and none will start (each send is guarded). A call under way
        (`sending` under a live lock): the stop is noted on the record and Stopping is raised; the
        delivery holding it ends it. LockNotHeld: it is no longer queued.
        """
        put = self._records.put_request(record)
        put["ConditionExpression"] = f"#status = :queued AND {_NOT_SENDING}"
        put["ExpressionAttributeNames"] = {"#status": "status"}
        put["ExpressionAttributeValues"] = {":queued": {"S": "queued"}, ":now": {"N": str(now)}}
        for last_round in (False, True):
            try:
                self._transact(
                    self._delete_key(item_id),
                    {"Put": put},
                    self._backlog_leave(record, item_id),
                    conditional=LockNotHeld,
                )
                return
            except LockNotHeld:
                pass
            try:
                self._write(
                    self._client.update_item,
                    TableName=self._records.table_name,
                    Key={"reschedule_id": {"S": str(record.get("reschedule_id"))}},
                    UpdateExpression=f"SET {STOP_ATTR} = :reason",
                    ConditionExpression=f"#status = :queued AND {_SENDING}",
                    ExpressionAttributeNames={"#status": "status"},
                    ExpressionAttributeValues={
                        ":reason": {"S": str(record.get("reason") or "cancelled_by_source")},
                        ":queued": {"S": "queued"},
                        ":now": {"N": str(now)},
                    },
                )
            except LockNotHeld:
                if last_round:  # neither queued and idle nor sending: it is done
                    raise
                continue  # the send ended between the two writes: end it now
            raise Stopping

    def guard_send(self, reschedule_id: str, token: str) -> None:
        """Right before a provider call: mark the record as sending, only while this delivery holds it,
        it is still queued, and no stop was asked for. LockNotHeld: no call may start."""
        self._write(
            self._client.update_item,
            TableName=self._records.table_name,
            Key={"reschedule_id": {"S": reschedule_id}},
            UpdateExpression=f"SET {SENDING_ATTR} = :token",
            ConditionExpression=(
                f"delivery_lock = :token AND #status = :queued AND attribute_not_exists({STOP_ATTR})"
            ),
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":token": {"S": token}, ":queued": {"S": "queued"}},
        )

    # -- the booking's id chain (Cal.com) -----------------------------------------------------------

    def latest_booking_id(self, provider: str, booking_id: str) -> str | None:
        """The id the last recorded move of this booking created, following the chain items (a
        cycle or MAX_CHAIN_HOPS ends the walk); None when the booking never got a new id."""
        latest, seen = booking_id, {booking_id}
        for _ in range(MAX_CHAIN_HOPS):
            try:
                item = self._read(chain_key(provider, latest))
            except LedgerUnavailable:
                raise unavailable(
                    "The relay's storage is unavailable; try again shortly.",
                    "storage_unavailable",
                    CHAIN_READ_RETRY_AFTER_SECONDS,
                ) from None
            newer = (item or {}).get(CHAIN_NEW_ID_ATTR, {}).get("S")
            if not newer or newer in seen:
                break
            latest = newer
            seen.add(newer)
        return latest if latest != booking_id else None

    # -- the item shapes ----------------------------------------------------------------------------

    def _answer_update(
        self,
        item_id: str,
        answer: Mapping[str, Any],
        expires_at: int,
        *,
        personal: Mapping[str, Any] | None = None,
    ) -> TransactWriteItemTypeDef:
        """The key's answer; a queued one keeps the personal fields, any other answer drops them."""
        names = {
            "#data": ANSWER_ATTR,
            "#status": STATUS_ATTR,
            "#expiry": EXPIRY_ATTR,
            "#lock": LOCK_EXPIRY_ATTR,
            "#personal": PERSONAL_ATTR,
        }
        values = {
            # Not key-sorted: a replay is the first answer, field for field and in order.
            ":data": {"S": json.dumps(answer, separators=(",", ":"))},
            ":completed": {"S": COMPLETED},
            ":expiry": {"N": str(expires_at)},
        }
        expression = "SET #data = :data, #status = :completed, #expiry = :expiry"
        if personal:
            values[":personal"] = {"S": json.dumps(personal, separators=(",", ":"))}
            expression += ", #personal = :personal REMOVE #lock"
        else:
            expression += " REMOVE #lock, #personal"
        return {
            "Update": {
                "TableName": self._table,
                "Key": {KEY_ATTR: {"S": item_id}},
                "UpdateExpression": expression,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }

    def _unsettle(self, item_id: str) -> TransactWriteItemTypeDef:
        return {
            "Update": {
                "TableName": self._table,
                "Key": {KEY_ATTR: {"S": item_id}},
                "UpdateExpression": "SET #status = :unsettled REMOVE #lock",
                "ExpressionAttributeNames": {"#status": STATUS_ATTR, "#lock": LOCK_EXPIRY_ATTR},
                "ExpressionAttributeValues": {":unsettled": {"S": UNSETTLED}},
            }
        }

    def _delete_key(self, item_id: str) -> TransactWriteItemTypeDef:
        return {"Delete": {"TableName": self._table, "Key": {KEY_ATTR: {"S": item_id}}}}

    def _last_move_put(
        self, last_move: str, item_id: str, record: Mapping[str, Any], expires_at: int
    ) -> TransactWriteItemTypeDef:
        """The booking's last move (it lives as long as the answer it vouches for)."""
        return {
            "Put": {
                "TableName": self._table,
                "Item": {
                    KEY_ATTR: {"S": last_move},
                    LAST_MOVE_KEY_ATTR: {"S": item_id},
                    "reschedule_id": {"S": str(record.get("reschedule_id", ""))},
                    EXPIRY_ATTR: {"N": str(expires_at)},
                },
            }
        }

    def _backlog_leave(self, record: Mapping[str, Any], item_id: str) -> TransactWriteItemTypeDef:
        """The queued request leaves its source's backlog (relay/dal/quotas.py) as its queued state ends."""
        return {
            "Update": {
                "TableName": self._table,
                "Key": {KEY_ATTR: {"S": backlog_key(str(record.get("source", "")))}},
                "UpdateExpression": "DELETE #keys :members SET #expiry = :expiry",
                "ExpressionAttributeNames": {"#keys": "keys", "#expiry": EXPIRY_ATTR},
                "ExpressionAttributeValues": {
                    ":members": {"SS": [quota_member(item_id)]},
                    ":expiry": {"N": str(int(time.time()) + BACKLOG_TTL_SECONDS)},
                },
            }
        }

    def _chain_put(self, record: Mapping[str, Any]) -> list[TransactWriteItemTypeDef]:
        """A success that gave the booking a new id: where its old id now leads (as long as the record)."""
        new_id, old_id = record.get("new_booking_id"), record.get("booking_id")
        if not new_id or not old_id or new_id == old_id:
            return []
        item = {
            KEY_ATTR: {"S": chain_key(str(record.get("provider")), str(old_id))},
            CHAIN_NEW_ID_ATTR: {"S": str(new_id)},
            "reschedule_id": {"S": str(record.get("reschedule_id", ""))},
        }
        if record.get("expires_at"):
            item[EXPIRY_ATTR] = {"N": str(int(record["expires_at"]))}
        return [{"Put": {"TableName": self._table, "Item": item}}]

    def _locked_put(self, record: Mapping[str, Any], token: str) -> Any:
        put = self._records.put_request(record)
        put["ConditionExpression"] = "delivery_lock = :token"
        put["ExpressionAttributeValues"] = {":token": {"S": token}}
        return put

    def _transact(
        self, *items: TransactWriteItemTypeDef, conditional: type[Exception] = LedgerUnavailable
    ) -> None:
        self._write(self._client.transact_write_items, TransactItems=list(items), conditional=conditional)

    @staticmethod
    def _write(operation: Any, *, conditional: type[Exception] = LockNotHeld, **request: Any) -> None:
        try:
            operation(**request)
        except ClientError as exc:
            if _conditional_failure(exc):
                raise conditional() from None
            raise LedgerUnavailable(exc.response.get("Error", {}).get("Code", "")) from exc
        except BotoCoreError as exc:
            raise LedgerUnavailable(type(exc).__name__) from exc
