"""Signed form links: the proof a public web form carries, since a browser page cannot keep a secret.

The business emails its invitee a link to its reschedule page. The link (and so the page's hidden
fields) carries `source`, `provider`, `booking_id`, `expires` (Unix seconds) and `token`, plus
`account` when it is not `default`. The token is an HMAC-SHA256, keyed with the source's link secret,
over exactly those values:

    message = '["reschedule-link/v1",source,provider,account,booking_id,expires]'  (compact JSON)
    token = base64url(HMAC-SHA256(link_secret, message)), without padding

`expires` is an integer, the rest are strings. Whoever holds the link may move that one booking until
it expires; changing any value, or taking the token to another booking, breaks it. New links are signed
with the first of `link_secrets`; every listed secret verifies (rotation).

A link's lifetime is capped (`LINK_MAX_LIFETIME_DAYS`, default 30): a link that expires later than
that from now is refused when it is minted and when it is used, so a leaked link cannot move its
booking for years.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from relay import fields as canonical_fields
from relay.callers.registry import LINK_FIELDS, Caller, Registry, SignedLinkSource
from relay.errors import RelayError, unauthenticated
from relay.settings import DEFAULT_LINK_MAX_LIFETIME_DAYS
from relay.web.forms import with_query

LINK_SCHEME = "reschedule-link/v1"
DEFAULT_ACCOUNT = "default"
# The token's own shape: base64url of 32 bytes, without padding.
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")
_EXPIRES = re.compile(r"^[0-9]{1,12}$")
MAX_LINK_VALUE_LENGTH = 64
DEFAULT_LINK_MAX_LIFETIME_SECONDS = DEFAULT_LINK_MAX_LIFETIME_DAYS * 86400


def link_token(
    secret: str, *, source: str, provider: str, account: str, booking_id: str, expires: int
) -> str:
    message = json.dumps([LINK_SCHEME, source, provider, account, booking_id, expires], separators=(",", ":"))
    digest = hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class LinkLifetimeTooLong(ValueError):
    """A link asked to expire further ahead than the relay accepts."""


def check_lifetime(expires: int, *, now: float, max_lifetime_seconds: int) -> None:
    if expires - now > max_lifetime_seconds:
        raise LinkLifetimeTooLong(
            f"a link may expire at most {max_lifetime_seconds // 86400} days ahead (LINK_MAX_LIFETIME_DAYS)"
        )


def mint(
    name: str,
    source: SignedLinkSource,
    *,
    provider: str,
    booking_id: str,
    expires: int,
    account: str = DEFAULT_ACCOUNT,
    now: float | None = None,
    max_lifetime_seconds: int = DEFAULT_LINK_MAX_LIFETIME_SECONDS,
) -> dict[str, str]:
    """Every hidden field the form needs, and `url`: the source's form page with them as its query.

    Raises LinkLifetimeTooLong when `expires` is further than `max_lifetime_seconds` from `now`."""
    check_lifetime(
        expires, now=time.time() if now is None else now, max_lifetime_seconds=max_lifetime_seconds
    )
    fields = {"source": name, "provider": provider, "booking_id": booking_id}
    if account != DEFAULT_ACCOUNT:
        fields["account"] = account
    token = link_token(
        source.link_secrets[0],
        source=name,
        provider=provider,
        account=account,
        booking_id=booking_id,
        expires=expires,
    )
    fields |= {"expires": str(expires), "token": token}
    return fields | {"url": with_query(source.form_url, fields)}


@dataclass(frozen=True)
class LinkAdmission:
    caller: Caller
    source: SignedLinkSource
    # The request's own fields, the link's proof (and the honeypot) taken out.
    fields: dict[str, Any]
    provider: str
    account: str
    booking_id: str
    # The honeypot field was filled in: a bot, most likely.
    spam: bool


def _invalid(detail: str) -> RelayError:
    return unauthenticated(detail, "link_invalid")


def named_source(registry: Registry, fields: dict[str, Any]) -> tuple[str, SignedLinkSource] | None:
    """The form source the body names, if any (not yet verified)."""
    name = fields.get("source")
    source = registry.sources.get(name) if isinstance(name, str) else None
    return (name, source) if isinstance(name, str) and isinstance(source, SignedLinkSource) else None


def _text(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # iClosed booking ids arrive as JSON numbers
    if isinstance(value, str) and 0 < len(value) <= MAX_LINK_VALUE_LENGTH:
        return value
    return None


def _signed_values(fields: dict[str, Any]) -> tuple[str, str, str]:
    try:
        canonical, _ = canonical_fields.canonicalise(fields)
    except RelayError:
        raise _invalid("The form gives a field more than once.") from None
    provider = _text(canonical.get("provider"))
    booking_id = _text(canonical.get("booking_id"))
    account = _text(canonical.get("account", DEFAULT_ACCOUNT))
    if provider is None or booking_id is None or account is None:
        raise _invalid("The form must carry the link's provider and booking_id as given in the link.")
    return provider, account, booking_id


def verify(
    registry: Registry,
    fields: dict[str, Any],
    *,
    now: float,
    check_expiry: bool = True,
    max_lifetime_seconds: int = DEFAULT_LINK_MAX_LIFETIME_SECONDS,
) -> LinkAdmission:
    """Check the link's token against the booking the form would move, then its expiry and lifetime.

    `check_expiry=False`: reading a result the link's own request made (the hosted result page).
    """
    named = named_source(registry, fields)
    if named is None:
        raise _invalid("The form's 'source' field does not name a form source of this relay.")
    name, source = named
    token, expires = fields.get("token"), fields.get("expires")
    if not isinstance(token, str) or not _TOKEN.match(token):
        raise _invalid("The link's token is missing or malformed; use the link from your email, unchanged.")
    if isinstance(expires, int) and not isinstance(expires, bool):
        expires = str(expires)
    if not isinstance(expires, str) or not _EXPIRES.match(expires):
        raise _invalid("The link's 'expires' is missing or malformed.")
    provider, account, booking_id = _signed_values(fields)
    matched = False
    for secret in source.link_secrets:  # every secret, every time: no early exit
        expected = link_token(
            secret,
            source=name,
            provider=provider,
            account=account,
            booking_id=booking_id,
            expires=int(expires),
        )
        matched |= hmac.compare_digest(expected, token)
    if not matched:
        raise _invalid("This link is not valid for this booking; use the link from your email, unchanged.")
    if check_expiry and now >= int(expires):
        raise unauthenticated("This reschedule link has expired; ask for a new one.", "link_expired")
    try:
        check_lifetime(int(expires), now=now, max_lifetime_seconds=max_lifetime_seconds)
    except LinkLifetimeTooLong:
        raise unauthenticated(
            "This reschedule link is valid for longer than the relay accepts; ask for a new one.",
            "link_lifetime_too_long",
        ) from None
    removed = {*LINK_FIELDS, *([source.honeypot] if source.honeypot else [])}
    trap = fields.get(source.honeypot) if source.honeypot else None
    return LinkAdmission(
        caller=Caller.of(name, source),
        source=source,
        fields={k: v for k, v in fields.items() if k not in removed},
        provider=provider,
        account=account,
        booking_id=booking_id,
        spam=bool(trap.strip()) if isinstance(trap, str) else trap is not None,
    )
