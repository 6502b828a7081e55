"""What kind of address a connection would reach, whatever way the address was spelled.

Names are resolved by the system resolver, so every IPv4 spelling a URL can use (`2130706433`,
`0x7f.1`, `017700000001`) arrives here as a plain address. IPv6 forms that carry an IPv4 address
(mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are
judged by the IPv4 address they reach.
"""

from __future__ import annotations

import ipaddress
from typing import Final

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

LOOPBACK: Final = "loopback"
UNSPECIFIED: Final = "unspecified"

_V4: Final[tuple[tuple[IPNetwork, str], ...]] = tuple(
    (ipaddress.ip_network(net), kind)
    for net, kind in (
        ("0.0.0.0/8", UNSPECIFIED),
        ("127.0.0.0/8", LOOPBACK),
        ("169.254.169.254/32", "cloud metadata"),
        ("169.254.0.0/16", "link-local"),
        ("10.0.0.0/8", "private"),
        ("172.16.0.0/12", "private"),
        ("192.168.0.0/16", "private"),
        ("100.64.0.0/10", "carrier-grade NAT"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
        ("192.0.0.0/24", "reserved"),
        ("192.88.99.0/24", "reserved"),
        ("198.18.0.0/15", "reserved"),
    )
)
_V6: Final[tuple[tuple[IPNetwork, str], ...]] = tuple(
    (ipaddress.ip_network(net), kind)
    for net, kind in (
        ("::/128", UNSPECIFIED),
        ("::1/128", LOOPBACK),
        ("fd00:ec2::254/128", "cloud metadata"),
        ("fc00::/7", "private"),
        ("fec0::/10", "private"),
        ("fe80::/10", "link-local"),
        ("ff00::/8", "multicast"),
        ("2001::/32", "Teredo tunnel"),
        ("64:ff9b:1::/48", "reserved"),
        ("100::/64", "reserved"),
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_COMPATIBLE = ipaddress.IPv6Network("::/96")


def parse_address(text: str) -> IPAddress:
    """An address as a resolver returns it; an IPv6 zone id (`fe80::1%eth0`) is dropped."""
    return ipaddress.ip_address(text.split("%", 1)[0])


def effective(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address carries, if it carries one; else the address itself."""
    if isinstance(address, ipaddress.IPv4Address):
        return address
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return address


def kind_of(address: IPAddress) -> str | None:
    """`loopback`, `private`, `link-local`, … for an address that is not public; None if it is."""
    address = effective(address)
    table = _V4 if isinstance(address, ipaddress.IPv4Address) else _V6
    for network, kind in table:
        if address in network:
            return kind
    return None if address.is_global else "reserved"


def is_local(address: IPAddress) -> bool:
    """Reaches this machine whatever listens: loopback, or unspecified (0.0.0.0 connects here)."""
    return kind_of(address) in (LOOPBACK, UNSPECIFIED)
