"""Lambda handler: the callback door. SQS batches from the callback queue in, one outcome callback
POST per message, partial batch failures out.

Apart from the delivery worker on purpose: a receiver that answers slowly (or drips its answer a
byte at a time) holds a callback worker for at most CALLBACK_TIMEOUT_SECONDS, never a delivery.
"""

from __future__ import annotations

# isort: off
import relay.startup  # first: no garbage collection during init (see the module)

# isort: on
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from relay.composition import build_callback_worker
from relay.dal import clients
from relay.logs import door_logger
from relay.reschedule.schedule import Disposition, ReceivedMessage
from relay.settings import get_settings
from relay.tracing import door_tracer

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = door_logger()
tracer = door_tracer(patch_modules=["botocore", "httpx"])
metrics = Metrics()

settings = get_settings()
callbacks = build_callback_worker(
    settings, dynamodb=clients.dynamodb(), secretsmanager=clients.secretsmanager(), sqs=clients.sqs
)
# Every record left in the queue is reported, even a whole batch of them: waiting is not an error.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
relay.startup.finished()


class WaitingForNextAttempt(Exception):
    """Raised for a message to leave in the queue: its visibility timeout was set to its next look."""


def _send(record: SQSRecord) -> None:
    message = ReceivedMessage(
        body=record.body,
        receipt_handle=record.receipt_handle,
        receive_count=int(record.attributes.approximate_receive_count or 1),
    )
    if callbacks.send(message) is Disposition.WAITING:
        raise WaitingForNextAttempt()
    metrics.add_metric(name="CallbacksFinished", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(raise_on_empty_metrics=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    answer = process_partial_response(event=event, record_handler=_send, processor=processor, context=context)
    return dict(answer)
