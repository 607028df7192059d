"""The attempt record: one shape (`AttemptRecord`), one builder, and the views taken of it.

Every refused, failed, succeeded, validated (dry run) or spam-trapped request of a known caller is
one record, keyed by `reschedule_id`, with a `booking_key` for the by-booking history whenever the
booking is known. A replay (the stored answer to a repeat) is not a new attempt and is not recorded.
Records hold the relay's own words (reason codes, its detail text, its field problems) and the
provider's trimmed scheduling facts, never the caller's values or anyone's personal data.

One vocabulary for the record and the POST answer: `status` is one of STATUSES, times are `start`
and `end`. GET answers also carry `requested_start`/`requested_end`, deprecated aliases kept for
one version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field

from relay.ports import booking_key
from relay.providers.client import ProviderError

if TYPE_CHECKING:
    from relay.command import RescheduleCommand
    from relay.errors import RelayError


Status = Literal["succeeded", "failed", "validated", "queued", "cancelled", "rejected_spam"]
STATUSES: tuple[Status, ...] = ("succeeded", "failed", "validated", "queued", "cancelled", "rejected_spam")
# Field problems stored with a refusal: the provider's own texts may echo the caller's values.
_UNSTORED_PROBLEM_MESSAGES = frozenset({"provider_rejected"})


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
    start: str
    end: str | None
    timezone: str
    status: Status
    http_status: int
    reason: str
    detail: str
    problems: list[dict[str, str]]
    provider_status: int | None
    latency_ms: int
    provider_result: dict[str, Any]
    # ---- durable delivery (a queued request's progress) ----
    delivery: Literal["async", "auto"]
    queued_at: str
    attempts: int
    next_attempt_at: str | None
    last_error: str | None
    last_error_detail: str | None
    finished_at: str | None
    # The idempotency item this request holds (its hashed key, not the caller's key).
    idempotency_record: str
    # Set while a queued request's last attempt left the booking's state unknown (not public).
    outcome_unknown: bool | None


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


@dataclass(frozen=True)
class Validated:
    """A dry run: checked exactly as live, nothing sent to the provider."""


def stored_problems(error: RelayError) -> list[dict[str, str]]:
    """An error's field problems as stored: field name, code, the relay's own message (never a value)."""
    problems = []
    for problem in error.errors:
        item = {"field": problem.field, "code": problem.code}
        if problem.code not in _UNSTORED_PROBLEM_MESSAGES:
            item["message"] = problem.message
        problems.append(item)
    return problems


@dataclass(frozen=True)
class Queued:
    """Accepted for delivery by the queue: waiting for its next attempt."""


@dataclass(frozen=True)
class Cancelled:
    """Cancelled by its source while queued: never delivered."""


@dataclass(frozen=True)
class Delivery:
    """A queued request's progress: how it is delivered, how often it was tried, what comes next."""

    mode: Literal["async", "auto"]
    queued_at: datetime
    idempotency_record: str
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    last_error_detail: str | None = None
    finished_at: datetime | None = None
    # An attempt's outcome is unknown (a lost answer no read settled): the next one reads first.
    unsettled: bool = False


Outcome = Succeeded | Failed | Spam | Validated | Queued | Cancelled


def _instant(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="milliseconds")


def _outcome_fields(outcome: Outcome) -> AttemptRecord:
    """What the outcome adds to a record: its status, and the facts that go with it."""
    fields = AttemptRecord()
    match outcome:
        case Succeeded():
            fields |= AttemptRecord(
                status="succeeded",
                http_status=200,
                provider_status=outcome.provider_status,
                latency_ms=outcome.latency_ms,
                provider_result=outcome.provider_result,
            )
            if outcome.new_booking_id is not None:
                fields |= AttemptRecord(new_booking_id=outcome.new_booking_id)
        case Failed(error=error):
            fields |= AttemptRecord(
                status="failed", http_status=error.status, reason=error.code, detail=error.detail
            )
            if error.errors:
                fields |= AttemptRecord(problems=stored_problems(error))
            if isinstance(error, ProviderError):
                fields |= AttemptRecord(provider_status=error.provider_status, latency_ms=error.latency_ms)
        case Spam():
            fields |= AttemptRecord(status="rejected_spam", http_status=202, reason="honeypot")
        case Validated():
            fields |= AttemptRecord(status="validated", http_status=200)
        case Queued():
            fields |= AttemptRecord(status="queued", http_status=202)
        case Cancelled():
            fields |= AttemptRecord(status="cancelled", http_status=200, reason="cancelled_by_source")
    return fields


def attempt_record(
    *,
    reschedule_id: str,
    source: str,
    attempted_at: datetime,
    retention_days: int,
    outcome: Outcome,
    command: RescheduleCommand | None = None,
    booking: Booking | None = None,
    delivery: Delivery | None = None,
) -> AttemptRecord:
    """The one builder of an attempt record (a queued one is rebuilt whole at each of its steps)."""
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
            start=command.local(command.start).isoformat(),
            end=command.local(command.end).isoformat() if command.end else None,
            timezone=command.timezone,
        )
    record |= _outcome_fields(outcome)
    if delivery is not None:
        record |= _delivery_fields(delivery, waiting=isinstance(outcome, Queued))
    return record


def _delivery_fields(delivery: Delivery, *, waiting: bool) -> AttemptRecord:
    """A queued request's progress; `next_attempt_at` only while it waits, `finished_at` once done."""
    return AttemptRecord(
        delivery=delivery.mode,
        queued_at=delivery.queued_at.isoformat(timespec="milliseconds"),
        attempts=delivery.attempts,
        next_attempt_at=_instant(delivery.next_attempt_at) if waiting else None,
        last_error=delivery.last_error,
        last_error_detail=delivery.last_error_detail,
        finished_at=None if waiting else _instant(delivery.finished_at),
        idempotency_record=delivery.idempotency_record,
        outcome_unknown=True if delivery.unsettled and waiting else None,
    )


_SUMMARY_KEYS = (
    "reschedule_id",
    "source",
    "provider",
    "account",
    "booking_id",
    "start",
    "status",
    "reason",
    "http_status",
    "provider_status",
    "latency_ms",
    "attempts",
    "last_error",
)


def summary(record: AttemptRecord | Mapping[str, Any]) -> dict[str, Any]:
    """What a log line says of an attempt: ids, reason codes and timings."""
    return {k: record[k] for k in _SUMMARY_KEYS if record.get(k) is not None}  # type: ignore[literal-required]


class StoredProblem(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    field: str
    code: str
    message: str | None = None


class RescheduleRecord(BaseModel):
    """One stored attempt, as `GET /v1/reschedules/{id}` and a booking's history return it."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # built only for the OpenAPI document

    reschedule_id: str
    status: Status = Field(description="What happened: " + ", ".join(STATUSES) + ".")
    provider: str | None = None
    account: str | None = None
    booking_id: str | None = None
    new_booking_id: str | None = Field(
        default=None, description="The id the provider gave the booking with this move (Cal.com)."
    )
    start: str | None = Field(
        None, description="The requested start, ISO 8601 with the offset of `timezone`."
    )
    end: str | None = None
    requested_start: str | None = Field(None, description="Deprecated alias of `start` (removed in v2).")
    requested_end: str | None = Field(None, description="Deprecated alias of `end` (removed in v2).")
    timezone: str | None = None
    attempted_at: str
    http_status: int | None = None
    reason: str | None = None
    detail: str | None = None
    problems: list[StoredProblem] | None = Field(
        None, description="A refusal's field problems: field, code and the relay's message."
    )
    provider_status: int | None = None
    latency_ms: int | None = None
    provider_result: dict[str, Any] | None = None
    delivery: str | None = Field(default=None, description="'async' or 'auto' when the request was queued")
    queued_at: str | None = None
    attempts: int | None = Field(default=None, description="Provider calls made for a queued request so far.")
    next_attempt_at: str | None = Field(default=None, description="When a queued request is tried next.")
    last_error: str | None = Field(default=None, description="The reason code of the last failed attempt.")
    last_error_detail: str | None = None
    finished_at: str | None = Field(
        default=None, description="When a queued request reached its final state."
    )
    stop_requested: str | None = Field(
        default=None,
        description="A stop asked for while a provider call was under way (`cancelled_by_source`, "
        "`source_revoked`): no further call starts; that call's outcome decides the final state.",
    )


_PUBLIC_FIELDS = tuple(RescheduleRecord.model_fields)


def public_view(record: dict[str, Any]) -> dict[str, Any]:
    """A stored record as its source may see it: the public fields, in their documented order.

    Items stored before the one vocabulary have `requested_start`/`requested_end` only.
    """
    times = {
        "start": record.get("start", record.get("requested_start")),
        "end": record.get("end", record.get("requested_end")),
    }
    if times["start"] is not None:
        record = {**record, **times, "requested_start": times["start"], "requested_end": times["end"]}
    return {k: record[k] for k in _PUBLIC_FIELDS if k in record}


class RescheduleResult(BaseModel):
    """The answer to a reschedule that succeeded (stored as the idempotency record's response)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    reschedule_id: str
    status: Literal["succeeded"] = Field(description="'succeeded': the provider moved the booking.")
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


def booking_fields(command: RescheduleCommand) -> dict[str, Any]:
    """What every answer says of the move: the booking and its new time, in the caller's zone."""
    return {
        "provider": command.provider,
        "account": command.account,
        "booking_id": command.booking_id,
        "start": command.local(command.start).isoformat(),
        "end": command.local(command.end).isoformat() if command.end else None,
        "timezone": command.timezone,
    }


def result_of(
    reschedule_id: str,
    command: RescheduleCommand,
    provider_result: dict[str, Any],
    new_booking_id: str | None = None,
) -> dict[str, Any]:
    """The success answer, with exactly RescheduleResult's fields (a unit test holds them together)."""
    return {
        "reschedule_id": reschedule_id,
        "status": "succeeded",
        **booking_fields(command),
        "new_booking_id": new_booking_id,
        "replayed": False,
        "provider_result": provider_result,
    }


class QueuedAnswer(BaseModel):
    """The answer to a reschedule accepted for delivery by the queue (202)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    reschedule_id: str
    status: str = Field(description="'queued'")
    provider: str
    account: str
    booking_id: str
    start: str
    end: str | None
    timezone: str
    next_attempt_at: str = Field(description="When the relay next tries the provider (ISO 8601, UTC).")


QUEUED = "queued"


def queued_answer(
    reschedule_id: str, command: RescheduleCommand, next_attempt_at: datetime
) -> dict[str, Any]:
    """The 202 answer, with exactly QueuedAnswer's fields; stored as the key's answer while queued."""
    return {
        "reschedule_id": reschedule_id,
        "status": QUEUED,
        **booking_fields(command),
        "next_attempt_at": next_attempt_at.isoformat(timespec="milliseconds"),
    }
