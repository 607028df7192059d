"""Wall times, zones and instants: the rules that keep a reschedule at the time the person meant."""

from __future__ import annotations

import functools
import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

# Names zoneinfo would accept that are not zones a person picks.
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})
_ZONE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+){0,2}$")
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\s*([AaPp])\.?[Mm]\.?)?$")
MAX_ZONE_NAME = 64
# Legacy names and abbreviations a person may type: fixed offsets (or not zones at all) that would
# silently ignore daylight saving time. Refused, naming the IANA zone meant (keys lower case).
_LEGACY_ZONES = {
    "est": "America/New_York",
    "edt": "America/New_York",
    "est5edt": "America/New_York",
    "cst": "America/Chicago",
    "cdt": "America/Chicago",
    "cst6cdt": "America/Chicago",
    "mst": "America/Denver (or America/Phoenix in Arizona)",
    "mdt": "America/Denver",
    "mst7mdt": "America/Denver",
    "pst": "America/Los_Angeles",
    "pdt": "America/Los_Angeles",
    "pst8pdt": "America/Los_Angeles",
    "akst": "America/Anchorage",
    "hst": "Pacific/Honolulu",
    "wet": "Europe/Lisbon",
    "cet": "Europe/Paris",
    "met": "Europe/Paris",
    "eet": "Europe/Athens",
    "bst": "Europe/London",
}
_FIXED_OFFSET_ZONE = re.compile(r"^(?:etc/)?gmt[+-]\d{1,2}$", re.IGNORECASE)


class TimeProblem(ValueError):
    """A time that cannot be used; the message tells the caller what to send instead."""


@functools.cache
def _zones_by_lower_name() -> dict[str, str]:
    """Every IANA zone by its lower-case name (read once, and only when a name is not exact)."""
    return {name.lower(): name for name in available_timezones() if name not in _NOT_ZONES}


def zone(name: str) -> ZoneInfo:
    """An IANA zone by name, matched case-insensitively; legacy fixed-offset names are refused."""
    if len(name) > MAX_ZONE_NAME or name in _NOT_ZONES or not _ZONE_NAME.match(name):
        raise TimeProblem("Use an IANA time zone name such as 'America/New_York'.")
    lower = name.lower()
    if lower in _LEGACY_ZONES:
        raise TimeProblem(
            f"{name.upper()} is a legacy abbreviation or fixed offset, not a place's time zone "
            f"(it gets daylight saving time wrong); use the IANA zone {_LEGACY_ZONES[lower]}."
        )
    if _FIXED_OFFSET_ZONE.match(name):
        raise TimeProblem(
            "A fixed UTC offset ignores daylight saving time; use the IANA zone of the place, "
            "such as 'America/New_York', or put the offset in `start`."
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        canonical = _zones_by_lower_name().get(lower)  # not exact: 'america/new_york'
    if canonical is None:
        raise TimeProblem("Unknown time zone; use an IANA name such as 'America/New_York'.")
    return ZoneInfo(canonical)


def parse_datetime(value: str) -> datetime:
    """ISO 8601 date-time, naive (local wall time) or with an offset; whole seconds only."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise TimeProblem("Use ISO 8601, e.g. '2026-12-01T15:00:00' or '2026-12-01T15:00:00-05:00'.") from exc
    if "T" not in value and " " not in value:
        raise TimeProblem("Give a date and a time, e.g. '2026-12-01T15:00:00'.")
    if parsed.microsecond:
        raise TimeProblem("Give the time to the second; fractions of a second are not supported.")
    return parsed


def parse_date(value: str) -> date:
    try:
        if len(value) != 10:
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError as exc:
        raise TimeProblem("Use YYYY-MM-DD, e.g. '2026-12-01'.") from exc


def parse_clock(value: str) -> time:
    """'15:00', '15:00:00' or '3:00 PM'."""
    match = _CLOCK.match(value.strip())
    if not match:
        raise TimeProblem("Use HH:MM (24-hour) or H:MM AM/PM, e.g. '15:00' or '3:00 PM'.")
    hour, minute, second = int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)
    meridiem = (match.group(4) or "").lower()
    if meridiem:
        if not 1 <= hour <= 12:
            raise TimeProblem("With AM/PM the hour is 1 to 12.")
        hour = hour % 12 + (12 if meridiem == "p" else 0)
    try:
        return time(hour, minute, second)
    except ValueError as exc:
        raise TimeProblem("That is not a time of day.") from exc


def localise(naive: datetime, tz: ZoneInfo) -> datetime:
    """Attach a zone to a wall time, refusing times that do not exist or happen twice."""
    candidate = naive.replace(tzinfo=tz, fold=0)
    round_trip = candidate.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
    if round_trip != naive:
        raise TimeProblem(
            f"This time does not exist in {tz.key} (the clocks skip it for daylight saving time)."
        )
    if candidate.utcoffset() != naive.replace(tzinfo=tz, fold=1).utcoffset():
        raise TimeProblem(
            f"This time happens twice in {tz.key} (daylight saving time ends); "
            "add the UTC offset you mean, e.g. '-04:00' or '-05:00'."
        )
    return candidate


def resolve(value: datetime, tz: ZoneInfo) -> datetime:
    """An instant in `tz`: aware values keep their instant, naive ones are wall time in `tz`."""
    if value.tzinfo is None:
        return localise(value, tz)
    return value.astimezone(tz)


def stored_instant(value: object) -> datetime | None:
    """An ISO 8601 instant as the relay stores it in records (None when absent or unreadable)."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def utc_now() -> datetime:
    return datetime.now(UTC)


def wall_time(value: datetime) -> str:
    """Local wall time without offset: iClosed's `dateTime`."""
    return value.replace(tzinfo=None).isoformat(timespec="seconds")


def rfc3339_utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def minutes(count: int) -> timedelta:
    return timedelta(minutes=count)
