"""Which network addresses the relay may send to: the rules, without any I/O.

A callback URL comes from a source's registry entry, so it is the caller's choice of where the relay
connects from inside AWS. Only globally routable unicast addresses are allowed; loopback only where
the setting allows it (the local stack's sink). IPv4 written inside IPv6 (::ffff:10.0.0.1, 6to4,
NAT64's well-known prefix) is judged by the IPv4 address it carries.
"""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# RFC 6052: 64:ff9b::/96 carries an IPv4 address in its last 32 bits (NAT64 translates it).
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Python's is_global is False for these, but spell them out: each is a refusal reason a test names.
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
LOOPBACK_NAMES = frozenset({"localhost", "localhost."})


def parse_host(host: str) -> IPAddress | None:
    """An IP literal (brackets and zone stripped), else None (a name)."""
    text = host.strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def embedded_ipv4(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64), else the address itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def is_loopback_host(host: str) -> bool:
    """`localhost` or a loopback literal (127/8, ::1, ::ffff:127.0.0.1): no lookup."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    address = parse_host(host)
    return address is not None and embedded_ipv4(address).is_loopback


def refusal(address: IPAddress, *, allow_loopback: bool) -> str | None:
    """None when the relay may connect to `address`; else what kind of address it is."""
    plain = embedded_ipv4(address)
    if plain.is_loopback:
        return None if allow_loopback else "loopback"
    checks = (
        ("unspecified", plain.is_unspecified),
        ("multicast", plain.is_multicast),
        ("link-local", plain.is_link_local),
        ("carrier-grade NAT", isinstance(plain, ipaddress.IPv4Address) and plain in _CGNAT),
        ("reserved", plain.is_reserved),
        ("private", plain.is_private),
        ("not globally routable", not plain.is_global),
    )
    return next((kind for kind, hit in checks if hit), None)
