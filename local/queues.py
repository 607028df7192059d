"""Create the relay's SQS queues from template.yaml (in moto's server), so local queues never drift.

Like local/tables.py for tables: the template's ``AWS::SQS::Queue`` properties become SQS queue
attributes; a ``RedrivePolicy`` naming another template queue (``!GetAtt X.Arn``) points at the
local queue made for ``X``, which is created first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from local.template import load_template

QUEUE_TYPE = "AWS::SQS::Queue"
# Template properties that are SQS queue attributes of the same name (a literal value each).
_ATTRIBUTE_PROPERTIES = (
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "MaximumMessageSize",
    "ReceiveMessageWaitTimeSeconds",
    "SqsManagedSseEnabled",
)


@dataclass(frozen=True)
class LocalQueue:
    logical_id: str
    name: str
    url: str
    arn: str


def _literal(value: Any, where: str) -> Any:
    if isinstance(value, dict):
        raise ValueError(f"{where} uses an intrinsic function; local queues need literal values")
    return value


def _attribute_text(value: Any) -> str:
    # SQS attributes are strings; YAML booleans are "true"/"false" there.
    return str(value).lower() if isinstance(value, bool) else str(value)


def queue_properties(template: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Per queue logical id: its template Properties (intrinsics kept as the template has them)."""
    template = load_template() if template is None else template
    return {
        logical_id: dict(resource.get("Properties") or {})
        for logical_id, resource in template["Resources"].items()
        if resource.get("Type") == QUEUE_TYPE
    }


def dead_letter_target(properties: Mapping[str, Any], logical_id: str) -> str | None:
    """The logical id of the queue a RedrivePolicy sends to (``!GetAtt X.Arn``), if any."""
    policy = properties.get("RedrivePolicy")
    if not policy:
        return None
    target = policy.get("deadLetterTargetArn")
    if not (isinstance(target, dict) and list(target) == ["Fn::GetAtt"] and target["Fn::GetAtt"][1] == "Arn"):
        raise ValueError(f"{logical_id}.RedrivePolicy must name a template queue with !GetAtt <Queue>.Arn")
    return str(target["Fn::GetAtt"][0])


def max_receive_count(template: dict[str, Any] | None = None, logical_id: str = "DeliveryQueue") -> int:
    """The queue's RedrivePolicy maxReceiveCount as the template sets it."""
    properties = queue_properties(template)[logical_id]
    return int(_literal(properties["RedrivePolicy"]["maxReceiveCount"], f"{logical_id}.maxReceiveCount"))


def queue_attributes(
    logical_id: str, properties: Mapping[str, Any], arns: Mapping[str, str]
) -> dict[str, str]:
    """SQS ``CreateQueue`` attributes for one template queue; ``arns`` are the local ARNs by logical id."""
    attributes = {
        name: _attribute_text(_literal(properties[name], f"{logical_id}.{name}"))
        for name in _ATTRIBUTE_PROPERTIES
        if name in properties
    }
    target = dead_letter_target(properties, logical_id)
    if target is not None:
        count = _literal(properties["RedrivePolicy"]["maxReceiveCount"], f"{logical_id}.maxReceiveCount")
        attributes["RedrivePolicy"] = json.dumps(
            {"deadLetterTargetArn": arns[target], "maxReceiveCount": int(count)}
        )
    return attributes


def create_queues(
    sqs_client: Any,
    names: Mapping[str, str],
    template: dict[str, Any] | None = None,
    overrides: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, LocalQueue]:
    """Create the template's queues under local names, e.g. ``{"DeliveryQueue": "relay-deliveries"}``.

    Dead-letter targets are created before the queues that redrive to them. ``overrides`` replaces
    attributes per logical id (tests: a short ``VisibilityTimeout``). Safe to repeat: an existing
    queue gets the template's attributes again.
    """
    properties = queue_properties(template)
    unknown = sorted(set(names) - set(properties))
    if unknown:
        raise KeyError(f"not SQS queues in template.yaml: {', '.join(unknown)}")
    created: dict[str, LocalQueue] = {}

    def create(logical_id: str) -> None:
        if logical_id in created:
            return
        target = dead_letter_target(properties[logical_id], logical_id)
        if target is not None:
            if target not in names:
                raise KeyError(f"{logical_id} redrives to {target}: give {target} a local name too")
            create(target)
        attributes = queue_attributes(
            logical_id, properties[logical_id], {lid: q.arn for lid, q in created.items()}
        )
        attributes.update((overrides or {}).get(logical_id, {}))
        url = sqs_client.create_queue(QueueName=names[logical_id])["QueueUrl"]
        # Set, not only created with: a queue left from an earlier run takes the current template.
        if attributes:
            sqs_client.set_queue_attributes(QueueUrl=url, Attributes=attributes)
        arn = sqs_client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
        created[logical_id] = LocalQueue(logical_id, names[logical_id], url, arn["QueueArn"])

    for logical_id in names:
        create(logical_id)
    return created
