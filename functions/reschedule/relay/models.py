"""Models per boundary: the request as sent (validated), and the command the relay carries out."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from relay.errors import FieldProblem, invalid
from relay.providers import PROVIDERS
from relay.providers.base import BookingIdProblem, Provider
from relay.settings import Settings
from relay.times import TimeProblem, minutes, parse_clock, parse_date, parse_datetime, resolve, utc_now, zone

MAX_REASON = 500
MAX_NOTES = 2000
MAX_ANSWERS = 50
MAX_ANSWER_KEY = 64
MAX_ANSWER_VALUE = 1000
MAX_BOOKING_ID = 64
MAX_DURATION_MINUTES = 24 * 60
MAX_FUTURE = timedelta(days=730)
MAX_FIELD_NAME_ECHO = 64
ACCOUNT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"

_DIGITS = re.compile(r"^[0-9]{1,18}$")
# C0/C1 controls other than tab, newline and carriage return.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _integer(value: Any) -> Any:
    """Forms send numbers as text: accept plain digit strings, never floats, booleans or '1e3'."""
    if isinstance(value, str) and _DIGITS.match(value.strip()):
        return int(value.strip())
    return value


def _identifier(value: Any) -> Any:
    """Booking ids: text, or a JSON integer (iClosed's ids are numbers)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _text(value: Any) -> Any:
    if isinstance(value, str) and _CONTROL.search(value):
        raise ValueError("Control characters are not allowed.")
    return value


def _blank_to_none(value: Any) -> Any:
    """An empty form field means 'not given'."""
    return None if isinstance(value, str) and not value.strip() else value


def _known_provider(value: str | None) -> str | None:
    if value is not None and value not in PROVIDERS:
        raise ValueError(f"Use one of: {', '.join(sorted(PROVIDERS))}.")
    return value


def _time_format(value: int | None) -> int | None:
    if value not in (None, 12, 24):
        raise ValueError("Use 12 or 24.")
    return value


Integer = Annotated[int, BeforeValidator(_integer)]
Text = Annotated[str, BeforeValidator(_text)]


class RescheduleRequest(BaseModel):
    """What the caller sent, by canonical name. Unknown fields are refused (no mass assignment)."""

    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)

    provider: Annotated[str | None, AfterValidator(_known_provider)] = None
    account: Annotated[str, Field(pattern=ACCOUNT_PATTERN)] = "default"
    booking_id: Annotated[Text, BeforeValidator(_identifier), Field(min_length=1, max_length=MAX_BOOKING_ID)]
    start: Annotated[Text | None, Field(max_length=40)] = None
    date: Annotated[Text | None, Field(max_length=10)] = None
    time: Annotated[Text | None, Field(max_length=11)] = None
    timezone: Annotated[Text | None, Field(max_length=64)] = None
    end: Annotated[Text | None, Field(max_length=40)] = None
    duration_minutes: Annotated[Integer | None, Field(ge=1, le=MAX_DURATION_MINUTES)] = None
    reason: Annotated[Text | None, Field(max_length=MAX_REASON)] = None
    notes: Annotated[Text | None, Field(max_length=MAX_NOTES)] = None
    user_id: Annotated[Integer | None, Field(ge=1, lt=2**63)] = None
    time_format: Annotated[Integer | None, AfterValidator(_time_format)] = None
    answers: Annotated[
        dict[
            Annotated[Text, Field(min_length=1, max_length=MAX_ANSWER_KEY)],
            Annotated[Text, Field(max_length=MAX_ANSWER_VALUE)],
        ]
        | None,
        Field(max_length=MAX_ANSWERS),
    ] = None


class RescheduleCommand(BaseModel):
    """A validated, normalised reschedule: the provider chosen, the booking id canonical, and the times
    as UTC instants (so arithmetic and comparisons are never fooled by DST) plus the zone they are meant in.
    """

    model_config = ConfigDict(frozen=True)

    provider: str
    account: str
    booking_id: str
    start: datetime
    end: datetime | None
    timezone: str
    reason: str | None = None
    notes: str | None = None
    user_id: int | None = None
    time_format: int | None = None
    answers: dict[str, str] | None = None

    @property
    def adapter(self) -> Provider:
        return PROVIDERS[self.provider]

    def local(self, instant: datetime) -> datetime:
        """The instant as wall time in the booking's zone."""
        return instant.astimezone(ZoneInfo(self.timezone))

    def key_material(self) -> dict[str, Any]:
        """What makes two commands the same reschedule when the caller sends no idempotency key."""
        return self.model_dump(
            mode="json", include={"provider", "account", "booking_id", "start", "end", "timezone"}
        )


_MESSAGES = {
    "extra_forbidden": "Unknown field.",
    "missing": "This field is required.",
    "literal_error": "Not one of the allowed values.",
}


def _problems(error: ValidationError, names: dict[str, str]) -> list[FieldProblem]:
    problems = []
    for item in error.errors(include_url=False, include_context=False, include_input=False):
        loc = [str(part) for part in item["loc"]]
        if loc:
            loc[0] = names.get(loc[0], loc[0])
        name = ".".join(loc)[:MAX_FIELD_NAME_ECHO]
        message = _MESSAGES.get(item["type"], item["msg"].removeprefix("Value error, "))
        problems.append(FieldProblem(name, message, item["type"]))
    return problems


def parse_request(fields: dict[str, Any], names: dict[str, str]) -> RescheduleRequest:
    cleaned = {k: _blank_to_none(v) for k, v in fields.items()}
    cleaned = {k: v for k, v in cleaned.items() if v is not None or k not in RescheduleRequest.model_fields}
    try:
        return RescheduleRequest.model_validate(cleaned)
    except ValidationError as exc:
        raise invalid(_problems(exc, names)) from None


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


def _choose_provider(request: RescheduleRequest, allowed: list[str], problems: _Problems) -> Provider | None:
    if request.provider is not None:
        return PROVIDERS[request.provider]
    if len(allowed) == 1 and allowed[0] in PROVIDERS:
        return PROVIDERS[allowed[0]]
    problems.add("provider", f"Say which provider: one of {', '.join(sorted(PROVIDERS))}.", "missing")
    return None


def _check_provider_fields(request: RescheduleRequest, provider: Provider, problems: _Problems) -> str | None:
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
    try:
        if request.start is not None:
            return parse_datetime(request.start)
        return datetime.combine(parse_date(request.date or ""), parse_clock(request.time or ""))
    except TimeProblem as exc:
        problems.add("start" if request.start is not None else "date", str(exc))
        return None


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
        time_format=(request.time_format or settings.default_time_format) if provider.needs_end else None,
        answers=request.answers,
    )


# Fields that only some providers act on; sending one to a provider that ignores it is refused.
_PROVIDER_SPECIFIC = frozenset().union(*(p.optional_fields for p in PROVIDERS.values()))
