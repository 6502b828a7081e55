"""The egress policy where connections are made: an httpcore network backend.

httpx opens every connection, redirect hops included, through its transport's network backend.
This one resolves the name itself, checks every address the name resolves to, and connects to
an address it checked: a name that resolves to a public address when checked and to an internal
one a moment later (DNS rebinding) cannot slip through, because nothing resolves it again.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpcore
import httpx
from httpcore import AsyncNetworkBackend, AsyncNetworkStream

from flowstream_engine.egress.addresses import IPAddress, parse_address
from flowstream_engine.egress.policy import EgressDenied, EgressPolicy

# (host, port) -> the addresses it resolves to, as strings a socket accepts.
Resolver = Callable[[str, int], Awaitable[list[str]]]
PROTECTED_NAMES_TTL_S = 60.0


class EgressRefused(httpcore.ConnectError):
    """A connection the egress policy refused; httpx raises it as an `httpx.ConnectError`
    whose `__cause__` is this, with the policy's message."""


async def system_resolver(host: str, port: int) -> list[str]:
    """The system resolver, off the event loop (asyncio runs getaddrinfo in a thread)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    found: list[str] = []
    for family, *_, sockaddr in infos:
        address = str(sockaddr[0])
        if family == socket.AF_INET6 and len(sockaddr) >= 4 and sockaddr[3]:
            address = f"{address}%{sockaddr[3]}"  # a zone id the connect needs
        if address not in found:
            found.append(address)
    return found


class EgressBackend(AsyncNetworkBackend):
    def __init__(
        self,
        policy: EgressPolicy,
        resolver: Resolver = system_resolver,
        inner: AsyncNetworkBackend | None = None,
    ) -> None:
        self.policy = policy
        self._resolve = resolver
        self._inner = inner or httpcore.AnyIOBackend()
        self._protected: frozenset[tuple[IPAddress, int]] = frozenset()
        self._protected_until = 0.0

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await self._checked(host, port)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
        last_error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def _checked(self, host: str, port: int) -> list[str]:
        """Every address `host` resolves to, once each passed the policy."""
        try:
            addresses = await self._resolve(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        if not addresses:
            raise httpcore.ConnectError(f"{host} resolves to no address")
        protected = await self._protected_addresses()
        for address in addresses:
            try:
                self.policy.check(host, parse_address(address), port, protected)
            except EgressDenied as denied:
                raise EgressRefused(str(denied)) from denied
        return addresses

    async def _protected_addresses(self) -> frozenset[tuple[IPAddress, int]]:
        """What the protected endpoints named by host name resolve to, kept for a minute."""
        if not self.policy.protected_hosts or time.monotonic() < self._protected_until:
            return self._protected
        found: set[tuple[IPAddress, int]] = set()
        for rule in self.policy.protected:
            if rule.host in self.policy.protected_hosts and rule.port is not None:
                try:
                    addresses = await self._resolve(rule.host, rule.port)
                except OSError:
                    continue  # not resolvable from here: not reachable by that name either
                found.update((parse_address(a), rule.port) for a in addresses)
        self._protected = frozenset(found)
        self._protected_until = time.monotonic() + PROTECTED_NAMES_TTL_S
        return self._protected

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        socket_options: Iterable[Any] | None = None,
    ) -> AsyncNetworkStream:
        raise EgressRefused("egress denied: Unix sockets are not an egress destination")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class EgressTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (TLS, pooling, HTTP/1.1) with every connection made through an
    :class:`EgressBackend`. Environment proxies are ignored: a proxy would be the only address
    checked, and the engine's environment is no business of a workflow's."""

    def __init__(self, backend: EgressBackend, limits: httpx.Limits) -> None:
        super().__init__(limits=limits, trust_env=False)
        # httpx builds its pool with httpcore's default backend and offers no argument for
        # another; the pool hands `_network_backend` to every connection it opens.
        self._pool._network_backend = backend
        self.backend = backend


def egress_denial(exc: BaseException) -> EgressRefused | None:
    """The policy's refusal behind an httpx error, if that is what it is."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, EgressRefused):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
