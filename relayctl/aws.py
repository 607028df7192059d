"""Where the relay's resources are, and boto3 clients for them (standard AWS configuration)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from relayctl.errors import EXIT_UNAVAILABLE, ToolError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient

DEFAULT_SECRETS_PREFIX = "reschedule-relay"
# A person is waiting: fail within seconds rather than retrying for a minute.
_CONFIG = Config(connect_timeout=3, read_timeout=10, retries={"mode": "standard", "total_max_attempts": 3})
# The stack outputs (template.yaml) that name what the tool needs.
_OUTPUTS = {
    "ReschedulesTableName": "reschedules_table",
    "IdempotencyTableName": "idempotency_table",
    "SourcesSecretName": "sources_secret",
    "DeliveryQueueUrl": "queue_url",
    "DeadLetterQueueUrl": "dlq_url",
    "ApiUrl": "api_url",
}


@dataclass
class Target:
    """The relay's resources: from flags, else the relay's own environment variable names."""

    profile: str | None = None
    region: str | None = None
    secrets_prefix: str = DEFAULT_SECRETS_PREFIX
    reschedules_table: str | None = None
    idempotency_table: str | None = None
    queue_url: str | None = None
    dlq_url: str | None = None
    # The relay's base URL (intake URLs, hosted page links): --api-url, $RELAY_API_URL or the stack's.
    api_url: str | None = None

    @classmethod
    def from_args(cls, args: Any) -> Target:
        target = cls(
            profile=args.profile,
            region=args.region,
            secrets_prefix=args.prefix or os.environ.get("SECRETS_PREFIX", DEFAULT_SECRETS_PREFIX),
            reschedules_table=args.table or os.environ.get("RESCHEDULES_TABLE_NAME"),
            idempotency_table=os.environ.get("IDEMPOTENCY_TABLE_NAME"),
            queue_url=args.queue_url or os.environ.get("DELIVERY_QUEUE_URL"),
            dlq_url=args.dlq_url or os.environ.get("DEAD_LETTER_QUEUE_URL"),
            api_url=getattr(args, "api_url", None) or os.environ.get("RELAY_API_URL"),
        )
        if args.stack:
            target.read_stack(args.stack)
        return target

    @cached_property
    def session(self) -> boto3.session.Session:
        return boto3.session.Session(profile_name=self.profile, region_name=self.region)

    def client(self, service: str) -> Any:
        return self.session.client(service, config=_CONFIG)

    @cached_property
    def secretsmanager(self) -> SecretsManagerClient:
        client: SecretsManagerClient = self.client("secretsmanager")
        return client

    @cached_property
    def dynamodb(self) -> DynamoDBClient:
        client: DynamoDBClient = self.client("dynamodb")
        return client

    @cached_property
    def sqs(self) -> SQSClient:
        client: SQSClient = self.client("sqs")
        return client

    @property
    def sources_secret(self) -> str:
        return f"{self.secrets_prefix}/sources"

    def provider_secret(self, provider: str, account: str) -> str:
        return f"{self.secrets_prefix}/providers/{provider}/{account}"

    def table(self) -> str:
        if not self.reschedules_table:
            raise ToolError("which table? pass --table or --stack, or set RESCHEDULES_TABLE_NAME", 2)
        return self.reschedules_table

    def queues(self) -> tuple[str, str]:
        if not self.queue_url or not self.dlq_url:
            raise ToolError(
                "which queues? pass --queue-url and --dlq-url or --stack, "
                "or set DELIVERY_QUEUE_URL and DEAD_LETTER_QUEUE_URL",
                2,
            )
        return self.queue_url, self.dlq_url

    def read_stack(self, name: str) -> None:
        """Fill what flags left open from the deployed stack's outputs."""
        try:
            stacks = self.client("cloudformation").describe_stacks(StackName=name)["Stacks"]
        except (BotoCoreError, ClientError) as exc:
            raise unavailable(f"stack {name!r}", exc) from None
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
        for key, attribute in _OUTPUTS.items():
            if key in outputs and getattr(self, attribute, None) is None:
                setattr(self, attribute, outputs[key])
        if "SourcesSecretName" in outputs:
            self.secrets_prefix = outputs["SourcesSecretName"].removesuffix("/sources")


def unavailable(what: str, exc: Exception) -> ToolError:
    """AWS said no or could not be reached: name what and why (the error code), never a value."""
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "error")
        if code in {
            "ResourceNotFoundException",
            "QueueDoesNotExist",
            "AWS.SimpleQueueService.NonExistentQueue",
        }:
            return ToolError(f"{what} does not exist ({code})", EXIT_UNAVAILABLE)
        return ToolError(f"{what}: AWS answered {code}", EXIT_UNAVAILABLE)
    return ToolError(f"{what}: AWS could not be reached ({type(exc).__name__})", EXIT_UNAVAILABLE)
