"""Domain errors: each knows its HTTP status and reason code; the handler renders them as RFC 9457."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# A problem's `type` is this page of the project's own docs, with the reason code as its fragment
# (RFC 9457 3.1.1); a deployment that publishes its docs sets PROBLEM_DOCS_URL (relay.settings).
DEFAULT_PROBLEM_DOCS_URL = "docs/api.md"
# The longest caller value the relay repeats (in an answer, a record or a log line); longer is cut.
MAX_ECHO = 64
# Every detail is the relay's own sentence around at most a few echoes: a backstop bound.
MAX_DETAIL = 512
_CUT = "..."


def bounded(value: str, limit: int = MAX_ECHO) -> str:
    """A caller's text as the relay may repeat it: at most `limit` characters, always valid UTF-8."""
    # Lone surrogates (JSON can carry them) become visible escapes, so the text always encodes.
    text = value[: limit + 1].encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - len(_CUT)] + _CUT


def echo(value: object) -> str:
    """A caller's value quoted in a detail or message: repr of the bounded text."""
    return repr(bounded(value if isinstance(value, str) else repr(value)))


@dataclass(frozen=True)
class FieldProblem:
    """One field at fault: `field` is the name the caller used (or the canonical name)."""

    field: str
    message: str
    code: str = "invalid"

    def __post_init__(self) -> None:
        # The name may be the caller's own (an unknown field): never repeated whole.
        object.__setattr__(self, "field", bounded(self.field))

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message, "code": self.code}


@dataclass(kw_only=True)
class RelayError(Exception):
    """Base of every error the relay answers deliberately. Never carries secrets or personal data.

    Built through the named factories below (or with keywords), so every field says what it is.
    """

    detail: str
    status: int
    code: str
    title: str
    errors: list[FieldProblem] = field(default_factory=list)
    retry_after: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # For the operator's log line only, never the answer or the record (e.g. which secret is missing).
    log_detail: str | None = None

    def __post_init__(self) -> None:
        self.detail = bounded(self.detail, MAX_DETAIL)
        super().__init__(self.detail)

    def problem(
        self, instance: str | None = None, docs_url: str = DEFAULT_PROBLEM_DOCS_URL
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"{docs_url}#{self.code}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = [e.as_dict() for e in self.errors]
        if self.retry_after is not None:
            body["retry_after"] = self.retry_after
        body.update(self.extra)
        return body


def malformed(detail: str, code: str = "malformed_body") -> RelayError:
    return RelayError(detail=detail, status=400, code=code, title="Malformed request")


def unauthenticated(detail: str, code: str = "unauthenticated") -> RelayError:
    return RelayError(detail=detail, status=401, code=code, title="Unauthenticated")


def forbidden(detail: str, code: str = "forbidden") -> RelayError:
    return RelayError(detail=detail, status=403, code=code, title="Not allowed")


def not_found(detail: str, code: str = "not_found") -> RelayError:
    return RelayError(detail=detail, status=404, code=code, title="Not found")


def too_large(detail: str) -> RelayError:
    return RelayError(detail=detail, status=413, code="body_too_large", title="Request body too large")


def unsupported_media_type(detail: str) -> RelayError:
    return RelayError(
        detail=detail, status=415, code="unsupported_media_type", title="Unsupported media type"
    )


# A configuration fault is not transient, but it is the operator's to fix, not the caller's: retry later.
NOT_CONFIGURED_RETRY_AFTER_SECONDS = 60


def not_configured(cause: str) -> RelayError:
    """503: a secret or setting the relay needs is missing or malformed.

    `cause` (which secret, what is wrong with it) goes to the operator's log line only: a caller
    learns that the relay is not configured, never a secret's path or the shape it should have.
    """
    return RelayError(
        detail="The relay is not configured for this request; its operator has been told what is missing.",
        log_detail=cause,
        status=503,
        code="not_configured",
        title="Relay not configured",
        retry_after=NOT_CONFIGURED_RETRY_AFTER_SECONDS,
    )


def invalid(errors: list[FieldProblem], detail: str = "The request has invalid fields.") -> RelayError:
    return RelayError(
        detail=detail, status=422, code="validation_failed", title="Invalid request", errors=errors
    )


def invalid_field(name: str, message: str, code: str = "invalid") -> RelayError:
    return invalid([FieldProblem(name, message, code)])


def unavailable(detail: str, code: str, retry_after: int) -> RelayError:
    """503: a dependency of the relay (storage, secrets, queue) is unavailable; the caller may retry."""
    return RelayError(
        detail=detail, status=503, code=code, title="Dependency unavailable", retry_after=retry_after
    )


def over_quota(detail: str, code: str, retry_after: int) -> RelayError:
    """429: a source went over one of its quotas (docs/callers.md "Quotas"); retry after the window."""
    return RelayError(detail=detail, status=429, code=code, title="Quota exceeded", retry_after=retry_after)


def conflict(detail: str, code: str, retry_after: int | None = None) -> RelayError:
    return RelayError(detail=detail, status=409, code=code, title="In progress", retry_after=retry_after)


def booking_moved_elsewhere(provider: str, moved_to: str) -> RelayError:
    """409: the booking was already rescheduled, to another time than the one asked for."""
    return RelayError(
        detail=(
            f"{provider} says this booking was already rescheduled (its id is now {moved_to!r}) "
            "to another time than the one asked for; it was not moved again. Check the booking, "
            "then send the new id if it should move."
        ),
        status=409,
        code="booking_moved_elsewhere",
        title="Booking moved elsewhere",
        extra={"new_booking_id": moved_to},
    )


def unprocessable(detail: str, code: str, title: str) -> RelayError:
    """422 for a whole request (not one field): e.g. an idempotency key reused with another request."""
    return RelayError(detail=detail, status=422, code=code, title=title)


def route_not_found() -> RelayError:
    return RelayError(detail="No such route.", status=404, code="route_not_found", title="Not found")


def internal_error() -> RelayError:
    return RelayError(
        detail="Something went wrong on our side.", status=500, code="internal_error", title="Internal error"
    )
