"""Event subscriptions (REST hooks): `POST /v1/subscriptions`, `GET /v1/subscriptions`,
`DELETE /v1/subscriptions/{id}`.

A source subscribes a URL to outcome events (`reschedule.succeeded`, `reschedule.failed`); each
final outcome is then sent to it by the outcome-callback machinery (relay.reschedule.callbacks),
signed with the subscription's own `whsec_` secret, which is shown once, in the 201 answer. A
source sees and deletes only its own subscriptions: another's id is a 404, as an unknown one.

Subscribing is for the API-key sources the registry allows it (`"subscriptions": true`): only
their outcomes cost the read of their subscriptions. A source it is turned off for may still list
and delete what it has, and nothing is sent to those any more.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from relay.errors import (
    FieldProblem,
    RelayError,
    conflict,
    forbidden,
    invalid,
    malformed,
    not_found,
    unavailable,
)
from relay.ports import (
    MAX_SUBSCRIPTIONS_PER_SOURCE,
    StoredSubscription,
    SubscriptionStoreFailed,
    TooManySubscriptions,
    subscription_item,
)
from relay.times import utc_now
from relay.webhooks.sender import CallbackTarget, url_allowed

if TYPE_CHECKING:
    from collections.abc import Callable

    from relay.ports import SubscriptionStore
    from relay.settings import Settings

EVENT_TYPES = ("reschedule.succeeded", "reschedule.failed")
MAX_URL_LENGTH = 2000
SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix of every Standard Webhooks secret, not one
# 32 random bytes: the size Standard Webhooks' reference libraries generate.
SECRET_BYTES = 32
ID_PREFIX = "sub_"
# The answer's Retry-After when DynamoDB did not answer.
STORAGE_RETRY_AFTER_SECONDS = 2
_ID_PATTERN = re.compile(r"^sub_[A-Za-z0-9_-]{16,64}$")


class Subscription(BaseModel):
    """A subscription as its source reads it (never its secret)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    id: str
    url: str
    events: list[str]
    created_at: str


class CreatedSubscription(Subscription):
    secret: str = Field(description="The `whsec_` secret that signs its events. Shown only in this answer.")


class SubscriptionList(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    subscriptions: list[Subscription]


class SubscriptionRequest(BaseModel):
    """`POST /v1/subscriptions`'s body (documented; the parsing below names each field at fault)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    url: str = Field(description="https URL the signed events are POSTed to.", max_length=MAX_URL_LENGTH)
    events: list[str] = Field(
        description=f"Any of {', '.join(EVENT_TYPES)}; default: both.", default=list(EVENT_TYPES)
    )


def target_of(subscription: StoredSubscription) -> CallbackTarget:
    """How the callback sender signs and sends to a subscription (its id stands for its fingerprint)."""
    encoded = subscription.secret.removeprefix(SECRET_PREFIX)
    return CallbackTarget(
        url=subscription.url, keys=(base64.b64decode(encoded),), fingerprint=subscription.id
    )


def storage_unavailable() -> RelayError:
    return unavailable(
        "The relay's storage is unavailable; try again shortly.",
        "storage_unavailable",
        STORAGE_RETRY_AFTER_SECONDS,
    )


def _new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


class Subscriptions:
    def __init__(
        self, store: SubscriptionStore, settings: Settings, *, enabled: Callable[[str], bool]
    ) -> None:
        self._store = store
        self._settings = settings
        # From the registry, read at each use: whether a source may subscribe and is sent to.
        self._enabled = enabled

    def create(self, source: str, body: bytes) -> dict[str, Any]:
        if not self._enabled(source):
            raise forbidden(
                "Event subscriptions are off for this source; an operator turns them on with "
                "'relayctl sources set <name> --subscriptions'.",
                "subscriptions_not_enabled",
            )
        url, events = self._parse(body)
        sub_id = ID_PREFIX + secrets.token_urlsafe(18)
        secret = _new_secret()
        created_at = utc_now().isoformat(timespec="seconds")
        try:
            self._store.add(source, sub_id, subscription_item(url, events, secret, created_at))
        except TooManySubscriptions:
            raise conflict(
                f"This source has {MAX_SUBSCRIPTIONS_PER_SOURCE} subscriptions, the most it may have; "
                "delete one first.",
                "too_many_subscriptions",
            ) from None
        except SubscriptionStoreFailed:
            raise storage_unavailable() from None
        return {"id": sub_id, "url": url, "events": events, "created_at": created_at, "secret": secret}

    def listing(self, source: str) -> dict[str, Any]:
        return {"subscriptions": [sub.public() for sub in self._read(source)]}

    def delete(self, source: str, sub_id: str) -> None:
        try:
            removed = _ID_PATTERN.match(sub_id) is not None and self._store.remove(source, sub_id)
        except SubscriptionStoreFailed:
            raise storage_unavailable() from None
        if not removed:
            raise not_found("This source has no such subscription.", "subscription_not_found")

    def matching(self, source: str, event_type: str) -> list[StoredSubscription]:
        """The source's subscriptions to `event_type` (raises SubscriptionStoreFailed); none, and no
        read, when subscriptions are off for it."""
        if not self._enabled(source):
            return []
        return [sub for sub in self._store.of_source(source) if event_type in sub.events]

    def find(self, source: str, sub_id: str) -> StoredSubscription | None:
        """One subscription, or None once deleted or turned off (raises SubscriptionStoreFailed)."""
        return self._store.get(source, sub_id) if self._enabled(source) else None

    def unsubscribe(self, source: str, sub_id: str) -> None:
        """The receiver answered 410 Gone (raises SubscriptionStoreFailed)."""
        self._store.remove(source, sub_id)

    def _read(self, source: str) -> list[StoredSubscription]:
        try:
            return self._store.of_source(source)
        except SubscriptionStoreFailed:
            raise storage_unavailable() from None

    def _parse(self, body: bytes) -> tuple[str, list[str]]:
        try:
            parsed = json.loads(body or b"null")
        except (ValueError, UnicodeDecodeError):
            raise malformed('The body is not JSON; send {"url": "https://...", "events": [...]}.') from None
        if not isinstance(parsed, dict):
            raise malformed('Send a JSON object: {"url": "https://...", "events": [...]}.')
        problems = [
            FieldProblem(name, "Not a field of a subscription.", "unknown_field")
            for name in parsed
            if name not in SubscriptionRequest.model_fields
        ]
        url_problem = self._url_problem(parsed.get("url"))
        if url_problem:
            problems.append(FieldProblem("url", url_problem))
        events = parsed.get("events", list(EVENT_TYPES))
        if (
            not isinstance(events, list)
            or not events
            or not all(isinstance(e, str) and e in EVENT_TYPES for e in events)
        ):
            problems.append(FieldProblem("events", f"A non-empty list of: {', '.join(EVENT_TYPES)}."))
        if problems:
            raise invalid(problems)
        return str(parsed["url"]), sorted(set(events), key=EVENT_TYPES.index)

    def _url_problem(self, url: Any) -> str | None:
        if not isinstance(url, str) or not url:
            return "Required: the https URL events are POSTed to."
        if len(url) > MAX_URL_LENGTH:
            return f"At most {MAX_URL_LENGTH} characters."
        parts = urlsplit(url)
        if not parts.hostname or "@" in parts.netloc:
            return "An absolute https URL without credentials."
        if not url_allowed(url, allow_http_loopback=self._settings.callback_allow_http_loopback):
            return "Events go to https URLs only."
        return None
