"""The attempt record: one shape (`AttemptRecord`), one builder, and the views taken of it.

Every refused, failed, succeeded or spam-trapped request of a known caller is one record, keyed by
`reschedule_id`, with a `booking_key` for the by-booking history. Records hold the relay's own words
(reason codes, its detail text) and the provider's trimmed scheduling facts, never the caller's
values or anyone's personal data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field

from relay.dal.records import booking_key
from relay.providers.client import ProviderError

if TYPE_CHECKING:
    from relay.command import RescheduleCommand
    from relay.errors import RelayError


class AttemptRecord(TypedDict, total=False):
    """One stored attempt (the reschedules table's item)."""

    reschedule_id: str
    source: str
    attempted_at: str
    expires_at: int
    provider: str
    account: str
    booking_id: str
    booking_key: str
    new_booking_id: str
    requested_start: str
    requested_end: str | None
    timezone: str
    status: Literal["succeeded", "failed", "rejected_spam"]
    http_status: int
    reason: str
    detail: str
    provider_status: int | None
    latency_ms: int
    provider_result: dict[str, Any]


@dataclass(frozen=True)
class Booking:
    """Which booking an attempt is about, when that is known without a full command (spam, links)."""

    provider: str
    account: str
    booking_id: str


@dataclass(frozen=True)
class Succeeded:
    provider_status: int
    latency_ms: int
    provider_result: dict[str, Any]
    # The id the provider gave the booking with this move (Cal.com), when it changes.
    new_booking_id: str | None = None


@dataclass(frozen=True)
class Failed:
    error: RelayError


@dataclass(frozen=True)
class Spam:
    """A form post that filled the honeypot: answered as accepted, nothing sent."""


Outcome = Succeeded | Failed | Spam


def attempt_record(
    *,
    reschedule_id: str,
    source: str,
    attempted_at: datetime,
    retention_days: int,
    outcome: Outcome,
    command: RescheduleCommand | None = None,
    booking: Booking | None = None,
) -> AttemptRecord:
    """The one builder of an attempt record."""
    record = AttemptRecord(
        reschedule_id=reschedule_id,
        source=source,
        attempted_at=attempted_at.isoformat(timespec="milliseconds"),
        expires_at=int((attempted_at + timedelta(days=retention_days)).timestamp()),
    )
    if command is not None:
        booking = Booking(command.provider, command.account, command.booking_id)
    if booking is not None:
        record |= AttemptRecord(
            provider=booking.provider,
            account=booking.account,
            booking_id=booking.booking_id,
            booking_key=booking_key(booking.provider, booking.booking_id),
        )
    if command is not None:
        record |= AttemptRecord(
            requested_start=command.local(command.start).isoformat(),
            requested_end=command.local(command.end).isoformat() if command.end else None,
            timezone=command.timezone,
        )
    match outcome:
        case Succeeded():
            record |= AttemptRecord(
                status="succeeded",
                http_status=200,
                provider_status=outcome.provider_status,
                latency_ms=outcome.latency_ms,
                provider_result=outcome.provider_result,
            )
            if outcome.new_booking_id is not None:
                record |= AttemptRecord(new_booking_id=outcome.new_booking_id)
        case Failed(error=error):
            record |= AttemptRecord(
                status="failed", http_status=error.status, reason=error.code, detail=error.detail
            )
            if isinstance(error, ProviderError):
                record |= AttemptRecord(provider_status=error.provider_status, latency_ms=error.latency_ms)
        case Spam():
            record |= AttemptRecord(status="rejected_spam", http_status=202, reason="honeypot")
    return record


_SUMMARY_KEYS = (
    "reschedule_id",
    "source",
    "provider",
    "account",
    "booking_id",
    "requested_start",
    "status",
    "reason",
    "http_status",
    "provider_status",
    "latency_ms",
)


def summary(record: AttemptRecord | Mapping[str, Any]) -> dict[str, Any]:
    """What a log line says of an attempt: ids, reason codes and timings."""
    return {k: record[k] for k in _SUMMARY_KEYS if record.get(k) is not None}  # type: ignore[literal-required]


class RescheduleRecord(BaseModel):
    """One stored attempt, as `GET /v1/reschedules/{id}` returns it."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # built only for the OpenAPI document

    reschedule_id: str
    status: str = Field(description="'succeeded' or 'failed'")
    provider: str | None = None
    account: str | None = None
    booking_id: str | None = None
    new_booking_id: str | None = Field(
        default=None, description="The id the provider gave the booking with this move (Cal.com)."
    )
    requested_start: str | None = None
    requested_end: str | None = None
    timezone: str | None = None
    attempted_at: str
    http_status: int | None = None
    reason: str | None = None
    detail: str | None = None
    provider_status: int | None = None
    latency_ms: int | None = None
    provider_result: dict[str, Any] | None = None


_PUBLIC_FIELDS = tuple(RescheduleRecord.model_fields)


def public_view(record: dict[str, Any]) -> dict[str, Any]:
    """A stored record as its source may see it: the public fields, in their documented order."""
    return {k: record[k] for k in _PUBLIC_FIELDS if k in record}


class RescheduleResult(BaseModel):
    """The answer to a reschedule that succeeded (stored as the idempotency record's response)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    reschedule_id: str
    status: str = Field(description="'rescheduled'")
    provider: str
    account: str
    booking_id: str = Field(description="The booking id as the caller sent it.")
    new_booking_id: str | None = Field(
        description="The booking's id after the move, when the provider gives it a new one (Cal.com)."
    )
    start: str = Field(description="The new start, ISO 8601 with the offset of `timezone`.")
    end: str | None
    timezone: str
    replayed: bool = Field(description="True when this is the stored answer to an earlier identical request.")
    provider_result: dict[str, Any] = Field(description="The provider's answer, trimmed to scheduling facts.")


def result_of(
    reschedule_id: str,
    command: RescheduleCommand,
    provider_result: dict[str, Any],
    new_booking_id: str | None = None,
) -> dict[str, Any]:
    """The success answer, with exactly RescheduleResult's fields (a unit test holds them together)."""
    return {
        "reschedule_id": reschedule_id,
        "status": "rescheduled",
        "provider": command.provider,
        "account": command.account,
        "booking_id": command.booking_id,
        "new_booking_id": new_booking_id,
        "start": command.local(command.start).isoformat(),
        "end": command.local(command.end).isoformat() if command.end else None,
        "timezone": command.timezone,
        "replayed": False,
        "provider_result": provider_result,
    }
