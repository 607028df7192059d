"""`relayctl queue status|redrive`: the delivery backlog and the dead-letter queue."""

from __future__ import annotations

import argparse
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from relayctl.aws import Target, unavailable
from relayctl.output import emit_json, say, table

_COUNTS = {
    "ApproximateNumberOfMessages": "waiting",
    "ApproximateNumberOfMessagesNotVisible": "in_flight",
    "ApproximateNumberOfMessagesDelayed": "delayed",
}
# SQS hands out at most 10 messages per receive; a redrive moves at most this many per run.
RECEIVE_BATCH = 10
MAX_REDRIVE_MESSAGES = 10_000


def _counts(target: Target, url: str) -> dict[str, int]:
    answer = target.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(_COUNTS))  # type: ignore[arg-type]
    attributes: dict[str, str] = {str(k): v for k, v in answer.get("Attributes", {}).items()}
    return {name: int(attributes.get(attribute, "0")) for attribute, name in _COUNTS.items()}


def status_command(target: Target, args: argparse.Namespace) -> int:
    queue_url, dlq_url = target.queues()
    try:
        rows = [
            {"queue": "delivery", **_counts(target, queue_url)},
            {"queue": "dead-letter", **_counts(target, dlq_url)},
        ]
    except (BotoCoreError, ClientError) as exc:
        raise unavailable("the delivery queues", exc) from None
    if args.json:
        emit_json(rows)
    else:
        table(rows, ["queue", *_COUNTS.values()])
    return 0


def redrive_command(target: Target, args: argparse.Namespace) -> int:
    """Move dead-lettered messages back to the delivery queue (each is deleted only once re-sent)."""
    queue_url, dlq_url = target.queues()
    moved = 0
    try:
        while moved < min(args.max, MAX_REDRIVE_MESSAGES):
            batch = target.sqs.receive_message(
                QueueUrl=dlq_url,
                MaxNumberOfMessages=min(RECEIVE_BATCH, args.max - moved),
                MessageAttributeNames=["All"],
                WaitTimeSeconds=0,
            ).get("Messages", [])
            if not batch:
                break
            for message in batch:
                target.sqs.send_message(
                    QueueUrl=queue_url,
                    MessageBody=message["Body"],
                    MessageAttributes=message.get("MessageAttributes", {}),
                )
                target.sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
                moved += 1
    except (BotoCoreError, ClientError) as exc:
        raise unavailable(f"redriving (moved {moved} so far)", exc) from None
    if args.json:
        emit_json({"moved": moved})
    else:
        say(f"moved {moved} message(s) from the dead-letter queue back to delivery")
    return 0


def register(commands: Any) -> None:
    queue = commands.add_parser(
        "queue", help="the delivery backlog and the dead-letter queue"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    queue.add_parser("status", help="messages waiting, in flight and delayed, per queue").set_defaults(
        run=status_command
    )
    redrive = queue.add_parser("redrive", help="send dead-lettered messages back for delivery")
    redrive.add_argument("--max", type=int, default=MAX_REDRIVE_MESSAGES, help="at most this many")
    redrive.set_defaults(run=redrive_command)
