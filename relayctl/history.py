"""`relayctl history|attempt|failures`: what happened, read from the reschedules table.

The history is the same data `GET /v1/bookings/{provider}/{booking_id}/reschedules` returns, read
through the relay's own table code (relay.dal.records) and shown through its public view.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from relay.dal.records import RecordStore
from relay.reschedule.attempts import public_view
from relayctl.aws import Target, unavailable
from relayctl.errors import ToolError
from relayctl.output import emit_json, table

COLUMNS = (
    "attempted_at",
    "reschedule_id",
    "source",
    "status",
    "reason",
    "start",
    "requested_start",
    "http_status",
)
# A scan reads the whole table: stop after this many pages so a mistake costs little.
MAX_SCAN_PAGES = 20


def _store(target: Target) -> RecordStore:
    return RecordStore(target.dynamodb, target.table())


def _view(record: dict[str, Any]) -> dict[str, Any]:
    return public_view(record) | {"source": record.get("source")}


def _show(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    if args.json:
        emit_json(rows)
    else:
        columns = [c for c in COLUMNS if any(c in row for row in rows)] or list(COLUMNS[:4])
        table(rows, columns)


def history_command(target: Target, args: argparse.Namespace) -> int:
    try:
        records = _store(target).history(args.provider.lower(), args.booking_id)
    except (BotoCoreError, ClientError) as exc:
        raise unavailable("the reschedules table", exc) from None
    rows = [_view(r) for r in records if args.source is None or r.get("source") == args.source]
    rows.sort(key=lambda row: row.get("attempted_at") or "", reverse=True)  # newest first
    _show(args, rows)
    return 0


def attempt_command(target: Target, args: argparse.Namespace) -> int:
    try:
        record = _store(target).get(args.reschedule_id)
    except (BotoCoreError, ClientError) as exc:
        raise unavailable("the reschedules table", exc) from None
    if record is None:
        raise ToolError(f"no attempt {args.reschedule_id}")
    view = _view(record)
    if args.json:
        emit_json(view)
    else:
        table([{"field": k, "value": v} for k, v in view.items()], ["field", "value"])
    return 0


def failures_command(target: Target, args: argparse.Namespace) -> int:
    since = (datetime.now(UTC) - timedelta(hours=args.hours)).isoformat(timespec="milliseconds")
    client = target.dynamodb
    rows: list[dict[str, Any]] = []
    request: dict[str, Any] = {
        "TableName": target.table(),
        "FilterExpression": "#source = :source AND #status = :failed AND attempted_at >= :since",
        "ExpressionAttributeNames": {"#source": "source", "#status": "status"},
        "ExpressionAttributeValues": {
            ":source": {"S": args.source},
            ":failed": {"S": "failed"},
            ":since": {"S": since},
        },
    }
    try:
        for _ in range(MAX_SCAN_PAGES):
            page = client.scan(**request)
            rows += [_view(RecordStore.plain(item)) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    except (BotoCoreError, ClientError) as exc:
        raise unavailable("the reschedules table", exc) from None
    rows.sort(key=lambda row: row.get("attempted_at") or "", reverse=True)
    _show(args, rows)
    return 0


def register(commands: Any) -> None:
    history = commands.add_parser("history", help="one booking's attempts, newest first")
    history.add_argument("provider")
    history.add_argument("booking_id")
    history.add_argument("--source", help="only this source's attempts")
    history.set_defaults(run=history_command)
    attempt = commands.add_parser("attempt", help="one attempt by its reschedule_id")
    attempt.add_argument("reschedule_id")
    attempt.set_defaults(run=attempt_command)
    failures = commands.add_parser("failures", help="a source's recent failed attempts (scans the table)")
    failures.add_argument("source")
    failures.add_argument("--hours", type=float, default=24.0, help="how far back (default 24)")
    failures.set_defaults(run=failures_command)
