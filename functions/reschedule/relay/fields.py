"""The request's canonical field names and the provider-native aliases accepted for each.

A field given twice (under two aliases) is an error, never a silent choice.
"""

from __future__ import annotations

from typing import Any

from relay.errors import FieldProblem, invalid

# canonical name -> every name accepted for it (canonical first)
ALIASES: dict[str, tuple[str, ...]] = {
    "provider": ("provider",),
    "account": ("account",),
    "booking_id": ("booking_id", "id", "eventCallId", "event_id"),
    "start": ("start", "dateTime"),
    "date": ("date",),
    "time": ("time",),
    "timezone": ("timezone", "timeZone"),
    "end": ("end",),
    "duration_minutes": ("duration_minutes",),
    "reason": ("reason", "rescheduleReason"),
    "notes": ("notes",),
    "user_id": ("user_id", "userId"),
    "rescheduled_by": ("rescheduled_by", "rescheduledBy"),
    "time_format": ("time_format",),
    "answers": ("answers", "form_field_answers"),
    "dry_run": ("dry_run",),
}
CANONICAL_BY_NAME = {alias: canonical for canonical, names in ALIASES.items() for alias in names}


def canonicalise(fields: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Map aliases onto canonical names; unknown names pass through so validation can name them.

    Returns the canonical mapping and, for error messages, the name the caller used for each field.
    """
    result: dict[str, Any] = {}
    given_as: dict[str, str] = {}
    problems: list[FieldProblem] = []
    for name, value in fields.items():
        canonical = CANONICAL_BY_NAME.get(name, name)
        if canonical in given_as:
            problems.append(
                FieldProblem(name, f"Already given as {given_as[canonical]!r}; send it once.", "duplicate")
            )
            continue
        given_as[canonical] = name
        result[canonical] = value
    if problems:
        raise invalid(problems)
    return result, given_as
