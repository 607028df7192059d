"""Where a callback may go: checked when the registry is written (relayctl) and again before each POST.

https only (plain http only to loopback, where the setting allows loopback at all); no user name or
password in the URL; and every address the host resolves to must be one the relay may connect to
(relay/addresses.py: no loopback, private, link-local, CGNAT, multicast or unspecified address,
IPv4-mapped forms included). A name is resolved here with the system resolver, as httpx will.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from relay.addresses import is_loopback_host, parse_host, refusal

Resolver = Callable[[str, int], Iterable[str]]
# A URL is text the operator typed: longer is not a URL the relay will POST to.
MAX_CALLBACK_URL = 2048


def system_resolver(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (IPv4 and IPv6); raises OSError when it does not resolve."""
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def destination_refusal(
    url: str, *, allow_loopback: bool, resolve: Resolver = system_resolver, refuse_unresolved: bool = True
) -> str | None:
    """None when the relay may POST to `url`; else why not, in words for a log line or the operator.

    `refuse_unresolved=False` (at send time): a name that does not resolve now is a failed attempt
    (the POST cannot connect either, and is retried), not a refusal that drops the event.
    """
    if len(url) > MAX_CALLBACK_URL:
        return f"the URL is longer than {MAX_CALLBACK_URL} characters"
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return "the URL does not parse"
    host = parts.hostname or ""
    refused = _url_refusal(parts.scheme, host, parts.username, parts.password, allow_loopback=allow_loopback)
    if refused:
        return refused
    literal = parse_host(host)
    try:
        addresses = [str(literal)] if literal is not None else list(resolve(host, port))
    except (OSError, UnicodeError):
        addresses = []
    if not addresses:
        return "the host does not resolve" if refuse_unresolved else None
    return _addresses_refusal(addresses, allow_loopback=allow_loopback)


def _url_refusal(
    scheme: str, host: str, username: str | None, password: str | None, *, allow_loopback: bool
) -> str | None:
    if not host:
        return "the URL has no host"
    if username is not None or password is not None:
        return "the URL carries a user name or password"
    if scheme != "https" and not (scheme == "http" and allow_loopback and is_loopback_host(host)):
        return "callbacks go to https URLs (plain http only to a loopback host, where allowed)"
    return None


def _addresses_refusal(addresses: list[str], *, allow_loopback: bool) -> str | None:
    """Every address must pass: a name with one private address among public ones is refused."""
    for text in addresses:
        address = parse_host(text)
        kind = "unparsable" if address is None else refusal(address, allow_loopback=allow_loopback)
        if kind is not None:
            return f"the host resolves to a {kind} address"
    return None
