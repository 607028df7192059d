"""The request as the caller sent it, by canonical name, validated field by field (no cross-field rules)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from relay.errors import FieldProblem, invalid
from relay.providers import PROVIDERS

MAX_REASON = 500
MAX_NOTES = 2000
MAX_ANSWERS = 50
MAX_ANSWER_KEY = 64
MAX_ANSWER_VALUE = 1000
MAX_BOOKING_ID = 64
MAX_DURATION_MINUTES = 24 * 60
MAX_FIELD_NAME_ECHO = 64
ACCOUNT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"

MAX_EMAIL = 254
# Deliberately loose: one '@', no spaces, a dot in the domain; the provider checks the rest.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
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
    """Matched case-insensitively: the docs spell it 'iClosed', the relay's name is 'iclosed'."""
    if value is None:
        return None
    if value.lower() not in PROVIDERS:
        raise ValueError(f"Use one of: {', '.join(sorted(PROVIDERS))}.")
    return value.lower()


_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})


def _flag(value: Any) -> Any:
    """Forms send flags as text: 'true' or '1', 'false' or '0' (JSON sends true or false)."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError("Use true or false (in a form: true, 1, false or 0).")
    return value


def _email(value: str | None) -> str | None:
    if value is not None and not _EMAIL.match(value):
        raise ValueError("Use an email address, e.g. 'host@example.com'.")
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
    rescheduled_by: Annotated[Text | None, Field(max_length=MAX_EMAIL), AfterValidator(_email)] = None
    time_format: Annotated[Integer | None, AfterValidator(_time_format)] = None
    dry_run: Annotated[bool | None, BeforeValidator(_flag)] = None
    answers: Annotated[
        dict[
            Annotated[Text, Field(min_length=1, max_length=MAX_ANSWER_KEY)],
            Annotated[Text, Field(max_length=MAX_ANSWER_VALUE)],
        ]
        | None,
        Field(max_length=MAX_ANSWERS),
    ] = None


_MESSAGES = {
    "extra_forbidden": "Unknown field.",
    "missing": "This field is required.",
    "literal_error": "Not one of the allowed values.",
    "bool_type": "Use true or false (in a form: true, 1, false or 0).",
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
