"""The one small interface every provider adapter implements.

An adapter knows its provider's field names, booking id format and error shapes; it does no I/O.
Sending is shared (relay.providers.client), so retries and timeouts behave the same for every provider.
An adapter is built with its base URL (relay.composition); what it declares about its provider is
class-level, so validation can use it without building one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from relay.command import RescheduleCommand
    from relay.errors import FieldProblem


@dataclass(frozen=True)
class OutboundRequest:
    method: str
    path: str
    json: dict[str, Any]


class BookingIdProblem(ValueError):
    """The booking id does not have this provider's format."""


class Provider(ABC):
    name: ClassVar[str]
    # Optional request fields (canonical names) this provider can act on; others are refused.
    optional_fields: ClassVar[frozenset[str]]
    # Whether the provider needs an end time (NovaCal) or only a start (iClosed).
    needs_end: ClassVar[bool]
    # The setting (relay.settings.Settings field) that holds this provider's base URL.
    base_url_setting: ClassVar[str]

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

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

    def warnings(self, token: str) -> list[str]:
        """Non-fatal remarks about the stored token (never including it)."""
        return []


def pick(source: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """The listed keys of a dict whose values are plain scalars."""
    if not isinstance(source, dict):
        return {}
    return {k: source[k] for k in names if isinstance(source.get(k), str | int | float | bool)}
