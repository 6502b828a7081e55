"""The egress policy: which (host, address, port) an API_CALL or LLM node may connect to.

Decided per resolved address, in this order:
1. flowstream's own endpoints (`FLOWSTREAM_EGRESS_PROTECTED`, the engine's NATS servers and its
   own port): always denied. One given on a loopback or unspecified address covers every local
   address at that port (`127.0.0.2`, `0.0.0.0`, `::1`, `::ffff:127.0.0.1`);
2. an unspecified address (`0.0.0.0`, `::`): always denied, it connects to this machine;
3. an entry of `FLOWSTREAM_EGRESS_DENY`: denied;
4. an entry of `FLOWSTREAM_EGRESS_ALLOW`: allowed;
5. otherwise `FLOWSTREAM_EGRESS_DEFAULT`: `public` allows public addresses and denies loopback,
   private, link-local, metadata, carrier-grade NAT, multicast and reserved ones; `deny` denies
   everything not allowed in step 4.

Entries are CIDRs or addresses (`10.0.0.0/8`, `::1`), host names (`api.example.com`, or
`*.example.com` for its subdomains), each optionally with a port (`127.0.0.1:8080`,
`[::1]:8080`, `api.example.com:443`). A host name entry matches the name a URL uses.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from flowstream_engine.egress.addresses import (
    UNSPECIFIED,
    IPAddress,
    IPNetwork,
    effective,
    is_local,
    kind_of,
)

DefaultRule = Literal["public", "deny"]
_HOST_NAME = re.compile(r"^(\*\.)?([a-z0-9_]([a-z0-9_-]{0,62})?)(\.[a-z0-9_]([a-z0-9_-]{0,62})?)*$")


class EgressDenied(Exception):
    """A connection the policy refuses; the message names the address and the rule."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"egress denied: {reason}")


def _port(text: str, entry: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"egress entry {entry!r}: {text!r} is not a port")
    return int(text)


def normalize_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


@dataclass(frozen=True)
class EgressRule:
    """One entry: a network or a host name, with or without a port."""

    entry: str
    network: IPNetwork | None = None
    host: str | None = None
    port: int | None = None

    @classmethod
    def parse(cls, entry: str) -> EgressRule:
        text = entry.strip()
        port: int | None = None
        if text.startswith("["):
            inner, _, rest = text[1:].partition("]")
            if rest:
                if not rest.startswith(":"):
                    raise ValueError(f"egress entry {entry!r}: expected [address]:port")
                port = _port(rest[1:], entry)
            text = inner
        elif text.count(":") == 1:
            text, _, port_text = text.partition(":")
            port = _port(port_text, entry)
        try:
            network = ipaddress.ip_network(text.split("%", 1)[0], strict=False)
        except ValueError:
            host = normalize_host(text)
            if not _HOST_NAME.match(host):
                raise ValueError(
                    f"egress entry {entry!r}: not a CIDR, an address or a host name"
                ) from None
            return cls(entry=entry.strip(), host=host, port=port)
        return cls(entry=entry.strip(), network=network, port=port)

    def matches(self, host: str, address: IPAddress, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            return any(
                a.version == self.network.version and a in self.network
                for a in (address, effective(address))
            )
        assert self.host is not None
        if self.host.startswith("*."):
            return host.endswith(self.host[1:])
        return host == self.host

    @property
    def covers_local(self) -> bool:
        """A protected endpoint on loopback or 0.0.0.0: every local address at its port."""
        if self.network is None:
            return self.host == "localhost"
        return self.network.num_addresses == 1 and is_local(self.network.network_address)


def parse_rules(entries: Iterable[str]) -> tuple[EgressRule, ...]:
    return tuple(EgressRule.parse(entry) for entry in entries if entry.strip())


def _target(host: str, address: IPAddress, port: int) -> str:
    shown = f"[{address}]" if address.version == 6 else str(address)
    if normalize_host(host) in (str(address), shown):
        return f"{shown}:{port}"
    return f"{host} ({shown}):{port}"


@dataclass(frozen=True)
class EgressPolicy:
    allow: tuple[EgressRule, ...] = ()
    deny: tuple[EgressRule, ...] = ()
    # Each has a port; a host name is also matched by the addresses it resolves to.
    protected: tuple[EgressRule, ...] = ()
    default: DefaultRule = "public"
    protected_hosts: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        for rule in self.protected:
            if rule.port is None:
                raise ValueError(f"protected endpoint {rule.entry!r} needs a port (host:port)")
        hosts = frozenset(r.host for r in self.protected if r.host and not r.covers_local)
        object.__setattr__(self, "protected_hosts", hosts)

    @classmethod
    def build(
        cls,
        allow: Iterable[str] = (),
        deny: Iterable[str] = (),
        protected: Iterable[str] = (),
        default: DefaultRule = "public",
    ) -> EgressPolicy:
        return cls(parse_rules(allow), parse_rules(deny), parse_rules(protected), default)

    def check(
        self,
        host: str,
        address: IPAddress,
        port: int,
        protected_addresses: frozenset[tuple[IPAddress, int]] = frozenset(),
    ) -> None:
        """Raise :class:`EgressDenied` unless a connection to `address`:`port` (resolved from
        `host`) is allowed. `protected_addresses` are the resolved addresses of protected
        endpoints given by host name."""
        name = normalize_host(host)
        target = _target(host, address, port)
        if self._protected(name, address, port, protected_addresses):
            raise EgressDenied(f"{target} is a flowstream endpoint")
        kind = kind_of(address)
        if kind == UNSPECIFIED:
            raise EgressDenied(f"{target} is an unspecified address")
        for rule in self.deny:
            if rule.matches(name, address, port):
                raise EgressDenied(f"{target} matches FLOWSTREAM_EGRESS_DENY entry {rule.entry!r}")
        if any(rule.matches(name, address, port) for rule in self.allow):
            return
        if self.default == "deny":
            raise EgressDenied(f"{target} is not in FLOWSTREAM_EGRESS_ALLOW")
        if kind is not None:
            raise EgressDenied(
                f"{target} is a {kind} address (FLOWSTREAM_EGRESS_ALLOW can allow it)"
            )

    def _protected(
        self,
        host: str,
        address: IPAddress,
        port: int,
        resolved: frozenset[tuple[IPAddress, int]],
    ) -> bool:
        real = effective(address)
        if (real, port) in resolved or (address, port) in resolved:
            return True
        for rule in self.protected:
            if rule.port != port:
                continue
            if rule.covers_local and is_local(real):
                return True
            if rule.matches(host, address, port):
                return True
        return False
