"""Lambda handler: the queue door. SQS batches in, one delivery attempt per message, partial batch
failures out (a message left in the queue is one whose visibility timeout is its next attempt)."""

from __future__ import annotations

# isort: off
import relay.startup  # first: no garbage collection during init (see the module)

# isort: on
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from relay.composition import build
from relay.dal import clients
from relay.deadline import Deadline
from relay.logs import door_logger
from relay.reschedule.callbacks import is_callback
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
relay_app = build(
    settings, dynamodb=clients.dynamodb(), secretsmanager=clients.secretsmanager(), sqs=clients.sqs
)
if relay_app.deliveries is None or relay_app.callbacks is None:
    raise RuntimeError("the worker needs DELIVERY_QUEUE_URL")
deliveries = relay_app.deliveries
callbacks = relay_app.callbacks
# Every record left in the queue is reported, even a whole batch of them: waiting is not an error.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
relay.startup.finished()


class WaitingForNextAttempt(Exception):
    """Raised for a message to leave in the queue: its visibility timeout was set to its next attempt."""


# A message is not started with less than this left of the invocation beyond its safety margin
# (a provider's quick answer and the outcome's write): it goes back to the queue for the next one.
MIN_DELIVERY_SECONDS = 2.0
MIN_SECONDS_TO_START_DELIVERY = settings.deadline_safety_margin_seconds + MIN_DELIVERY_SECONDS


def _callback_on_delivery_queue(message: ReceivedMessage) -> None:
    """An event queued here before the callback queue existed moves there (the callback function
    sends it); without a callback queue (an older deployment) it is sent here, as before."""
    if settings.callback_queue_url:
        callbacks.adopt(message.body)
        metrics.add_metric(name="CallbacksMoved", unit=MetricUnit.Count, value=1)
        return
    if callbacks.send(message) is Disposition.WAITING:
        raise WaitingForNextAttempt()
    metrics.add_metric(name="CallbacksFinished", unit=MetricUnit.Count, value=1)


def _deliver(record: SQSRecord, lambda_context: LambdaContext) -> None:
    message = ReceivedMessage(
        body=record.body,
        receipt_handle=record.receipt_handle,
        receive_count=int(record.attributes.approximate_receive_count or 1),
    )
    if is_callback(message.body):  # an outcome event for a source's callback URL
        _callback_on_delivery_queue(message)
        return
    # The provider call and the outcome's write must end before this invocation is stopped (the
    # worker's own Timeout, not the HTTP door's API Gateway cap).
    if lambda_context.get_remaining_time_in_millis() / 1000 < MIN_SECONDS_TO_START_DELIVERY:
        deliveries.put_back(message)
        metrics.add_metric(name="DeliveriesPutBack", unit=MetricUnit.Count, value=1)
        raise WaitingForNextAttempt()
    deadline = Deadline.for_worker(lambda_context, settings.deadline_safety_margin_seconds)
    if deliveries.deliver(message, deadline) is Disposition.WAITING:
        metrics.add_metric(name="DeliveriesWaiting", unit=MetricUnit.Count, value=1)
        raise WaitingForNextAttempt()
    metrics.add_metric(name="DeliveriesFinished", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(raise_on_empty_metrics=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    answer = process_partial_response(
        event=event, record_handler=_deliver, processor=processor, context=context
    )
    return dict(answer)
