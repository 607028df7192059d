"""From a validated request to a RescheduleCommand: provider chosen, its fields checked, times resolved."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from relay.command import RescheduleCommand
from relay.errors import FieldProblem, RelayError, invalid
from relay.fields import canonicalise
from relay.providers import PROVIDERS
from relay.providers.base import BookingIdProblem, Provider
from relay.reschedule.attempts import Booking
from relay.reschedule.request import ACCOUNT_PATTERN, RescheduleRequest, parse_request
from relay.settings import Settings
from relay.times import TimeProblem, minutes, parse_clock, parse_date, parse_datetime, resolve, utc_now, zone

MAX_FUTURE = timedelta(days=730)


class _Problems:
    """Collects field problems so one answer lists every field at fault."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names
        self.items: list[FieldProblem] = []

    def add(self, field: str, message: str, code: str = "invalid") -> None:
        self.items.append(FieldProblem(self.names.get(field, field), message, code))

    def raise_if_any(self) -> None:
        if self.items:
            raise invalid(self.items)


def _choose_provider(
    request: RescheduleRequest, allowed: list[str], problems: _Problems
) -> type[Provider] | None:
    if request.provider is not None:
        return PROVIDERS[request.provider]
    if len(allowed) == 1 and allowed[0] in PROVIDERS:
        return PROVIDERS[allowed[0]]
    problems.add("provider", f"Say which provider: one of {', '.join(sorted(PROVIDERS))}.", "missing")
    return None


def _check_provider_fields(
    request: RescheduleRequest, provider: type[Provider], problems: _Problems
) -> str | None:
    """Refuse fields this provider would ignore (no silent drops); return the canonical booking id."""
    for name in sorted(request.model_fields_set & (_PROVIDER_SPECIFIC - provider.optional_fields)):
        problems.add(name, f"{provider.name} does not take this field.", "not_supported")
    try:
        return provider.normalise_booking_id(request.booking_id)
    except BookingIdProblem as exc:
        problems.add("booking_id", str(exc))
        return None


def _start_value(request: RescheduleRequest, problems: _Problems) -> datetime | None:
    """The requested start as parsed: naive (wall time) or aware (with offset)."""
    if request.start is not None and (request.date is not None or request.time is not None):
        problems.add("start", "Give either start, or date and time, not both.", "conflict")
        return None
    if request.start is None and (request.date is None or request.time is None):
        if request.date is None and request.time is None:
            problems.add("start", "Give the new start (or date and time).", "missing")
        else:
            problems.add("date" if request.date is None else "time", "Give both date and time.", "missing")
        return None
    if request.start is not None:
        try:
            return parse_datetime(request.start)
        except TimeProblem as exc:
            problems.add("start", str(exc))
            return None
    # Each part is blamed on itself: a bad time is the `time` field's fault, not `date`'s.
    day = clock = None
    try:
        day = parse_date(request.date or "")
    except TimeProblem as exc:
        problems.add("date", str(exc))
    try:
        clock = parse_clock(request.time or "")
    except TimeProblem as exc:
        problems.add("time", str(exc))
    return datetime.combine(day, clock) if day is not None and clock is not None else None


def _zone(request: RescheduleRequest, start: datetime | None, problems: _Problems) -> ZoneInfo | None:
    if request.timezone is not None:
        try:
            return zone(request.timezone)
        except TimeProblem as exc:
            problems.add("timezone", str(exc))
            return None
    if start is not None and start.tzinfo is None:
        problems.add("timezone", "Give an IANA time zone, or a start with a UTC offset.", "missing")
        return None
    return zone("UTC")  # an offset alone names no zone; UTC is the honest one


def _resolve_start(value: datetime, tz: ZoneInfo, field: str, problems: _Problems) -> datetime | None:
    try:
        start = resolve(value, tz).astimezone(UTC)
    except TimeProblem as exc:
        problems.add(field, str(exc), "nonexistent_or_ambiguous")
        return None
    now = utc_now()
    if start <= now:
        problems.add(field, "The new start is in the past.", "in_past")
    elif start - now > MAX_FUTURE:
        problems.add(field, f"The new start is more than {MAX_FUTURE.days} days ahead.", "too_far")
    return start


def _end(
    request: RescheduleRequest, start: datetime, tz: ZoneInfo, settings: Settings, problems: _Problems
) -> datetime | None:
    if request.end is not None and request.duration_minutes is not None:
        problems.add("duration_minutes", "Give either end or duration_minutes, not both.", "conflict")
        return None
    if request.end is None:
        return start + minutes(request.duration_minutes or settings.default_duration_minutes)
    try:
        end = resolve(parse_datetime(request.end), tz).astimezone(UTC)
    except TimeProblem as exc:
        problems.add("end", str(exc))
        return None
    if end <= start:
        problems.add("end", "The end must be after the start.", "end_before_start")
    return end


def normalise(
    request: RescheduleRequest, settings: Settings, allowed_providers: list[str], names: dict[str, str]
) -> RescheduleCommand:
    """Check the request against the provider and the clock; every problem is reported at once."""
    problems = _Problems(names)
    provider = _choose_provider(request, allowed_providers, problems)
    booking_id = _check_provider_fields(request, provider, problems) if provider else None
    value = _start_value(request, problems)
    tz = _zone(request, value, problems)
    start_field = "start" if request.start is not None else "time"
    start = _resolve_start(value, tz, start_field, problems) if value and tz else None
    end = None
    if provider is not None and provider.needs_end and start is not None and tz is not None:
        end = _end(request, start, tz, settings, problems)
    problems.raise_if_any()
    if provider is None or booking_id is None or start is None or tz is None:  # pragma: no cover
        raise invalid([FieldProblem("", "The request is incomplete.")])
    return RescheduleCommand(
        provider=provider.name,
        account=request.account,
        booking_id=booking_id,
        start=start,
        end=end,
        timezone=tz.key,
        reason=request.reason,
        notes=request.notes,
        user_id=request.user_id,
        rescheduled_by=request.rescheduled_by,
        time_format=(request.time_format or settings.default_time_format) if provider.needs_end else None,
        answers=request.answers,
        dry_run=bool(request.dry_run),
    )


# Fields that only some providers act on; sending one to a provider that ignores it is refused.
_PROVIDER_SPECIFIC = frozenset().union(*(p.optional_fields for p in PROVIDERS.values()))


def command_from(
    fields: dict[str, Any], *, allowed_providers: list[str], settings: Settings
) -> RescheduleCommand:
    """A decoded body, as the caller sent it, to the command: canonical names, parsed, normalised."""
    canonical, names = canonicalise(fields)
    return normalise(parse_request(canonical, names), settings, allowed_providers, names)


def booking_of(fields: dict[str, Any], *, allowed_providers: list[str]) -> Booking | None:
    """The booking a refused request is about, when its provider and booking id parse on their own.

    So a refusal shows in that booking's history; None when the booking itself is in doubt.
    """
    try:
        canonical, _ = canonicalise(fields)
    except RelayError:
        return None
    raw_provider = canonical.get("provider")
    if isinstance(raw_provider, str) and raw_provider.strip():
        adapter = PROVIDERS.get(raw_provider.strip().lower())
    elif len(allowed_providers) == 1:
        adapter = PROVIDERS.get(allowed_providers[0])
    else:
        adapter = None
    raw_id = canonical.get("booking_id")
    if isinstance(raw_id, int) and not isinstance(raw_id, bool):
        raw_id = str(raw_id)
    if adapter is None or not isinstance(raw_id, str):
        return None
    try:
        booking_id = adapter.normalise_booking_id(raw_id.strip())
    except BookingIdProblem:
        return None
    account = canonical.get("account", "default")
    if not isinstance(account, str) or not re.match(ACCOUNT_PATTERN, account.strip()):
        return None
    return Booking(adapter.name, account.strip(), booking_id)
