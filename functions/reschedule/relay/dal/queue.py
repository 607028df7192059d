"""The delivery queue (SQS): the relay's only SQS code.

The HTTP door sends a queued reschedule; the worker re-times a message for its next attempt and
parks what reached the maximum age in the dead-letter queue. Every SQS error becomes one
`QueueUnavailable` (a 503 with Retry-After when it reaches a caller): nothing is accepted that
the queue did not take.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from relay.ports import MAX_DELAY_SECONDS, MAX_VISIBILITY_TIMEOUT_SECONDS, QueueUnavailable

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


def _clamp(seconds: int, upper: int) -> int:
    return max(0, min(int(seconds), upper))


class DeliveryQueue:
    """The delivery queue and its dead-letter queue, through an injected boto3 SQS client.

    `client` is the client itself, or what makes it at the first SQS call (a sync request never
    needs SQS, so a cold start does not pay for the client; the factory returns the container's one).
    """

    def __init__(
        self, client: SQSClient | Callable[[], SQSClient], queue_url: str, dead_letter_queue_url: str
    ) -> None:
        self._client: SQSClient | None = None
        self._connect: Callable[[], SQSClient]
        if callable(client):  # a boto3 client is not callable; its factory is
            self._connect = client
        else:
            self._client = client
            self._connect = lambda: client
        self._queue_url = queue_url
        self._dead_letter_queue_url = dead_letter_queue_url

    def _sqs(self) -> SQSClient:
        if self._client is None:
            self._client = self._connect()
        return self._client

    def send(self, body: str, delay_seconds: int = 0) -> str:
        """Queue `body`, visible after `delay_seconds` (at most SQS's 15 minutes); the message id."""
        answer = self._call(
            "send_message",
            QueueUrl=self._queue_url,
            MessageBody=body,
            DelaySeconds=_clamp(delay_seconds, MAX_DELAY_SECONDS),
        )
        return str(answer["MessageId"])

    def change_visibility(self, receipt_handle: str, seconds: int) -> int:
        """Hide a received message for `seconds` (at most about 12 hours); the seconds applied."""
        applied = _clamp(seconds, MAX_VISIBILITY_TIMEOUT_SECONDS)
        self._call(
            "change_message_visibility",
            QueueUrl=self._queue_url,
            ReceiptHandle=receipt_handle,
            VisibilityTimeout=applied,
        )
        return applied

    def send_to_dead_letter(self, body: str) -> str:
        """Park `body` in the dead-letter queue for an operator; the message id."""
        answer = self._call("send_message", QueueUrl=self._dead_letter_queue_url, MessageBody=body)
        return str(answer["MessageId"])

    def _call(self, operation: str, **request: Any) -> dict[str, Any]:
        try:
            answer: dict[str, Any] = getattr(self._sqs(), operation)(**request)
        except ClientError as exc:
            # SQS's code only: the request (and so the message body) never goes into the error.
            raise QueueUnavailable(sqs_code=str(exc.response.get("Error", {}).get("Code", ""))) from exc
        except BotoCoreError as exc:
            raise QueueUnavailable() from exc
        return answer
