"""Date-time and time-zone field checks, as strict as the provider contracts describe them."""

from __future__ import annotations

import functools
import re
import zoneinfo
from datetime import UTC, datetime, timedelta, timezone

# iClosed `dateTime`: local wall time, seconds precision, no offset (contract: `2026-12-01T15:00:00`).
_LOCAL_WALL_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})")

# NovaCal `start`/`end`: RFC 3339 `date-time`, which always carries `Z` or a numeric offset.
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)


@functools.cache
def _iana_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def is_iana_zone(value: object) -> bool:
    return isinstance(value, str) and value in _iana_zones()


def parse_local_wall_time(value: str) -> datetime | None:
    """`YYYY-MM-DDTHH:MM:SS` as a naive datetime, or None if the text or the date is invalid."""
    match = _LOCAL_WALL_TIME.fullmatch(value)
    if match is None:
        return None
    try:
        year, month, day, hour, minute, second = (int(part) for part in match.groups())
        return datetime(year, month, day, hour, minute, second)  # noqa: DTZ001 - a wall time, zone given apart
    except ValueError:
        return None


def parse_rfc3339(value: str) -> datetime | None:
    """An RFC 3339 date-time with `Z` or offset as an aware datetime, or None if invalid."""
    match = _RFC3339.fullmatch(value)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    if zulu:
        tz = UTC
    else:
        if int(off_h) > 23 or int(off_m) > 59:
            return None
        offset = timedelta(hours=int(off_h), minutes=int(off_m))
        tz = timezone(-offset if sign == "-" else offset)
    microsecond = int((fraction or "0").ljust(6, "0")[:6])
    try:
        return datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), microsecond, tzinfo=tz
        )
    except ValueError:
        return None


def wall_time_to_utc(wall_time: datetime, zone: str) -> datetime:
    return wall_time.replace(tzinfo=zoneinfo.ZoneInfo(zone)).astimezone(UTC)


def format_utc_millis(moment: datetime) -> str:
    """JavaScript `Date.toISOString()` form, as iClosed's Node API renders UTC times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def format_utc(moment: datetime) -> str:
    """RFC 3339 in UTC with `Z`, seconds precision unless the moment has a fraction."""
    text = moment.astimezone(UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"


# Acuity `datetime`: ISO 8601 with a UTC offset (`-0500`, `-05:00` or `Z`); seconds optional.
_ISO8601_WITH_OFFSET = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(?:(Z)|([+-])(\d{2}):?(\d{2}))"
)


def parse_iso8601_with_offset(value: str) -> datetime | None:
    """An ISO 8601 date-time that carries its offset, as an aware datetime; None without one."""
    match = _ISO8601_WITH_OFFSET.fullmatch(value)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    if zulu:
        tz = UTC
    else:
        if int(off_h) > 23 or int(off_m) > 59:
            return None
        offset = timedelta(hours=int(off_h), minutes=int(off_m))
        tz = timezone(-offset if sign == "-" else offset)
    microsecond = int((fraction or "0").ljust(6, "0")[:6])
    try:
        return datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second or 0), microsecond, tzinfo=tz
        )
    except ValueError:
        return None
