"""`dry_run: true`: a request checked exactly as a live one, answered with what would be sent.

No idempotency lock is taken and no provider is called; the attempt is recorded as `validated`.
The provider request shown is the adapter's own (method, path, body), never its credentials.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from relay.reschedule.attempts import booking_fields

if TYPE_CHECKING:
    from relay.command import RescheduleCommand
    from relay.providers.base import OutboundRequest


class ProviderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    method: str
    path: str = Field(description="Relative to the provider's base URL.")
    body: dict[str, Any] | None
    query: dict[str, str] = Field(default_factory=dict, description="Query parameters, if any.")


class DryRunResult(BaseModel):
    """The answer to a dry run: the request is valid, and this is what the relay would send."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    reschedule_id: str
    status: Literal["validated"]
    dry_run: Literal[True]
    provider: str
    account: str
    booking_id: str
    start: str
    end: str | None
    timezone: str
    provider_request: ProviderRequest


def dry_run_answer(
    reschedule_id: str, command: RescheduleCommand, request: OutboundRequest
) -> dict[str, Any]:
    """DryRunResult's fields, exactly (a unit test holds them together)."""
    return {
        "reschedule_id": reschedule_id,
        "status": "validated",
        "dry_run": True,
        **booking_fields(command),
        "provider_request": {
            "method": request.method,
            "path": request.path,
            "body": None if request.json is None else dict(request.json),
            "query": dict(request.params),
        },
    }
