"""The one small interface every provider adapter implements.

An adapter declares everything about its provider (name, booking id format, the shape of its
secret and how it becomes headers, the fields it takes, its base-URL setting and production
default, its delivery rate, how its errors map and what of its answer is kept); it does no I/O.
Sending is shared (relay.providers.client), so retries and timeouts behave the same for every provider.
An adapter is built from the settings (relay.composition); what it declares is class-level, so
validation and the registry's checks can use it without building one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr

if TYPE_CHECKING:
    from relay.command import RescheduleCommand
    from relay.errors import FieldProblem
    from relay.settings import Settings

# Provider messages echoed into field problems are cut to this length.
MAX_PROVIDER_MESSAGE = 300
# The highest `rate_per_minute` an account secret may set (1000/s: beyond it pacing means nothing).
MAX_RATE_PER_MINUTE = 60_000


@dataclass(frozen=True)
class OutboundRequest:
    method: str
    path: str
    json: dict[str, Any] | None = None
    # Headers the provider's API itself needs (a version header); credentials add their own.
    headers: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)


class BookingIdProblem(ValueError):
    """The booking id does not have this provider's format."""


class Credentials(BaseModel):
    """A provider account's secret (Secrets Manager JSON), validated; it knows how it is sent."""

    # defer_build: each adapter's credentials are built at their first use, not all at cold start.
    model_config = ConfigDict(frozen=True, extra="ignore", hide_input_in_errors=True, defer_build=True)

    # Pacing (relay.providers.pacing): calls per minute; None: the adapter's rate, 0: unpaced.
    rate_per_minute: int | None = Field(default=None, ge=0, le=MAX_RATE_PER_MINUTE)

    @abstractmethod
    def headers(self) -> dict[str, str]: ...

    def params(self) -> dict[str, str]:
        """Query parameters the account's settings add to every request (none by default)."""
        return {}

    def warnings(self) -> list[str]:
        """Non-fatal remarks about the stored secret (never including it)."""
        return []


class BearerKey(Credentials):
    """`{"api_key": "..."}`, sent as `Authorization: Bearer <api_key>`."""

    api_key: SecretStr = Field(min_length=1)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key.get_secret_value().strip()}"}


@dataclass(frozen=True)
class BookingState:
    """What a structured read of one booking says, in the relay's terms (no personal data).

    `found` False: the provider has no booking with this id. `active` False: cancelled or rejected
    (it cannot be moved). `rescheduled_to`: the id a move gave it (Cal.com), when it was moved away.
    """

    booking_id: str
    found: bool = True
    active: bool = True
    start: datetime | None = None
    status: str | None = None
    rescheduled_to: str | None = None
    # Kinds the relay does not move (a Cal.com series or seat): a read that shows them settles nothing.
    recurring: bool = False
    seated: bool = False


class Settled(StrEnum):
    """What reading the booking after an unknown outcome shows about the requested move."""

    # The move happened: `new_booking_id` is the booking's id now (the same id where ids do not change).
    MOVED = "moved"
    # Nothing moved: the move may be sent again, as the retry policy says.
    NOT_MOVED = "not_moved"
    # The booking was moved, but not to the requested start: a move by someone else (send nothing).
    MOVED_ELSEWHERE = "moved_elsewhere"
    # One more read is needed: `read_next` is the id to read (Cal.com's successor booking).
    READ_NEXT = "read_next"
    # The reads cannot tell (not found, no read, a successor Cal.com could not name): send nothing.
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Settlement:
    outcome: Settled
    # MOVED, MOVED_ELSEWHERE: the booking's id now. READ_NEXT: the id to read next.
    booking_id: str | None = None


@dataclass(frozen=True)
class Refusal:
    """A provider's 4xx the caller can act on, in the relay's words (status 422 unless moved)."""

    code: str
    detail: str
    errors: list[FieldProblem] = field(default_factory=list)
    # The booking was already rescheduled to this id (Cal.com): the client reads it to decide.
    moved_to: str | None = None


class Provider(ABC):
    name: ClassVar[str]
    # How people write it (the docs' provider table).
    display_name: ClassVar[str]
    # The booking id format in words (OpenAPI field docs, error messages).
    booking_id_format: ClassVar[str]
    # Optional request fields (canonical names) this provider can act on; others are refused.
    optional_fields: ClassVar[frozenset[str]]
    # Whether the provider needs an end time (NovaCal) or only a start (the others).
    needs_end: ClassVar[bool]
    # The setting (relay.settings.Settings field) that holds this provider's base URL, and its default.
    base_url_setting: ClassVar[str]
    # A booking id in this provider's format, as messages show it (so it can be copied).
    example_booking_id: ClassVar[str]
    production_base_url: ClassVar[str]
    # The shape of the account secret `<prefix>/providers/<name>/<account>`.
    credentials: ClassVar[type[Credentials]]
    # Requests per minute the relay should send at most, per account (the provider's published limit).
    delivery_rate_per_minute: ClassVar[int]

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    @classmethod
    def from_settings(cls, settings: Settings) -> Provider:
        return cls(str(getattr(settings, cls.base_url_setting)))

    @staticmethod
    @abstractmethod
    def normalise_booking_id(raw: str) -> str:
        """The canonical booking id, safe to put into a URL path; raise BookingIdProblem otherwise."""

    @abstractmethod
    def build_request(self, command: RescheduleCommand) -> OutboundRequest: ...

    @abstractmethod
    def summarise(self, body: Any) -> dict[str, Any]:
        """The trimmed success result: only scheduling facts, never the invitee's personal data."""

    @abstractmethod
    def field_errors(self, body: Any) -> list[FieldProblem]:
        """The provider's validation errors mapped onto the relay's canonical field names."""

    def refusal(self, status: int, body: Any) -> Refusal | None:
        """A 400/422 that means something more specific than 'refused the fields' (None: generic)."""
        return None

    def new_booking_id(self, body: Any) -> str | None:
        """The id the booking has after the move, when the provider changes it (Cal.com)."""
        return None

    # Whether a move gives the booking a new id (Cal.com): later moves follow the recorded ids.
    booking_id_changes: ClassVar[bool] = False
    # Whether to read the booking before moving it (read_request), to refuse what cannot be moved.
    reads_before_move: ClassVar[bool] = False
    # Whether the provider has a structured booking read (read_request / booking_state / settle).
    has_read: ClassVar[bool] = False
    # Whether sending the same move twice leaves the booking as one move does (a PUT to a target
    # state: iClosed, NovaCal). False (Cal.com's POST creates a booking; Acuity): after an unknown
    # outcome the move is never sent again before a read settles it.
    repeat_is_harmless: ClassVar[bool] = True
    # Whether the provider's 429 blocks the account for its whole wait (Cal.com: refused calls count
    # and the key is blocked 60 s): the relay then sends nothing for that account until it ends.
    holds_after_429: ClassVar[bool] = False
    # Statuses that mean "the relay's stored credentials were refused": read the secret again, once.
    auth_statuses: ClassVar[frozenset[int]] = frozenset({401, 403})

    def movable(self, state: BookingState) -> Refusal | None:
        """Why a read booking cannot be moved by the relay (None: it can)."""
        return None

    def read_request(self, booking_id: str) -> OutboundRequest | None:
        """The request that reads a booking (to settle an unknown outcome); None: the provider has none."""
        return None

    def booking_state(self, booking_id: str, body: Any) -> BookingState:
        """A 2xx answer to read_request, read; a shape the adapter cannot read is `found=False`."""
        return BookingState(booking_id, found=False)

    def outcome_unknown(self, status: int, body: Any) -> bool:
        """Whether this answer leaves open whether the move happened (only a read can tell).

        A 5xx may come from a proxy after the provider committed; a provider adds its own (Cal.com's
        409 for a move colliding with one in flight, and its "already rescheduled" 400).
        """
        return status >= 500

    def rate_limit_reset(self, headers: Mapping[str, str]) -> int | None:
        """Seconds until the provider takes calls again, from its own rate-limit headers (None: none)."""
        return None


def pick(source: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """The listed keys of a dict whose values are plain scalars."""
    if not isinstance(source, dict):
        return {}
    return {k: source[k] for k in names if isinstance(source.get(k), str | int | float | bool)}
