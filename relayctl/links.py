"""`relayctl links mint`: a signed reschedule link for one booking, from the deployed link secret."""

from __future__ import annotations

import argparse
import os
import time
from typing import Any
from urllib.parse import urlencode

from relay.callers.links import LinkLifetimeTooLong, mint
from relay.callers.registry import SignedLinkSource
from relay.providers import PROVIDERS
from relay.providers.base import BookingIdProblem
from relay.settings import DEFAULT_LINK_MAX_LIFETIME_DAYS
from relayctl import registry
from relayctl.aws import Target
from relayctl.errors import ToolError
from relayctl.output import emit_json, say

DEFAULT_EXPIRES_IN_SECONDS = 7 * 24 * 3600
HOSTED_PAGE_PATH = "/v1/pages/reschedule"


def mint_link(
    raw_registry: dict[str, Any],
    *,
    source: str,
    provider: str,
    booking_id: str,
    expires_in: int,
    account: str = "default",
    now: float | None = None,
    api_url: str | None = None,
    max_lifetime_days: int = DEFAULT_LINK_MAX_LIFETIME_DAYS,
) -> dict[str, str]:
    """The hidden fields and `url` of a link for one booking, from the registry's raw JSON; with the
    relay's `api_url`, also `hosted_url`: the relay's own reschedule page for this link."""
    parsed = registry.check(raw_registry)
    found = parsed.sources.get(source)
    if not isinstance(found, SignedLinkSource):
        forms = sorted(name for name, _ in parsed.of_kind(SignedLinkSource))
        raise ToolError(f"{source!r} is not a signed_link source; those are: {', '.join(forms) or '(none)'}")
    if account not in found.providers.get(provider, []):
        raise ToolError(f"{source} may not use {provider} account {account!r}")
    try:
        booking = PROVIDERS[provider].normalise_booking_id(booking_id)
    except BookingIdProblem as exc:
        raise ToolError(f"booking {booking_id!r}: {exc}") from None
    moment = time.time() if now is None else now
    try:
        link = mint(
            source,
            found,
            provider=provider,
            booking_id=booking,
            expires=int(moment) + expires_in,
            account=account,
            now=moment,
            max_lifetime_seconds=max_lifetime_days * 86400,
        )
    except LinkLifetimeTooLong as exc:
        raise ToolError(f"--expires-in {expires_in}: {exc}") from None
    if api_url:
        fields = {k: v for k, v in link.items() if k != "url"}
        link["hosted_url"] = f"{api_url.rstrip('/')}{HOSTED_PAGE_PATH}?{urlencode(fields)}"
    return link


def mint_command(target: Target, args: argparse.Namespace) -> int:
    raw, _ = registry.read(target.secretsmanager, target.sources_secret)
    link = mint_link(
        raw,
        source=args.source,
        provider=args.provider.lower(),
        booking_id=args.booking_id,
        expires_in=args.expires_in,
        account=args.account,
        api_url=target.api_url,
        max_lifetime_days=args.max_lifetime_days,
    )
    if args.json:
        emit_json(link)
    else:
        say(link["url"])
    return 0


def register(commands: Any) -> None:
    links = commands.add_parser("links", help="signed form links").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    minting = links.add_parser("mint", help="a signed link for one booking (prints its URL)")
    minting.add_argument("source")
    minting.add_argument("provider")
    minting.add_argument("booking_id")
    minting.add_argument("--account", default="default")
    minting.add_argument("--expires-in", type=int, default=DEFAULT_EXPIRES_IN_SECONDS, help="seconds")
    minting.add_argument("--api-url", help="the relay's ApiUrl: also print hosted_url (or $RELAY_API_URL)")
    minting.add_argument(
        "--max-lifetime-days",
        type=int,
        default=int(os.environ.get("LINK_MAX_LIFETIME_DAYS", DEFAULT_LINK_MAX_LIFETIME_DAYS)),
        help="the deployment's LINK_MAX_LIFETIME_DAYS (default: that variable, else 30)",
    )
    minting.set_defaults(run=mint_command)
