"""The egress policy on addresses (no connection is made) and its network backend with a fake
resolver and a fake inner backend: what is checked is exactly what is connected to."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpcore
import pytest
from flowstream_engine.egress import EgressPolicy, EgressRefused, policy_for
from flowstream_engine.egress.addresses import parse_address
from flowstream_engine.egress.policy import EgressDenied
from flowstream_engine.egress.transport import EgressBackend, system_resolver
from flowstream_engine.settings import EngineSettings
from pydantic import ValidationError

DEFAULT = EgressPolicy()
DEV = EgressPolicy.build(allow=["127.0.0.0/8", "::1"], protected=["127.0.0.1:8080"])


def denial(policy: EgressPolicy, address: str, port: int = 80, host: str | None = None) -> str:
    with pytest.raises(EgressDenied) as caught:
        policy.check(host or address, parse_address(address), port)
    return str(caught.value)


def allowed(policy: EgressPolicy, address: str, port: int = 80, host: str | None = None) -> bool:
    try:
        policy.check(host or address, parse_address(address), port)
    except EgressDenied:
        return False
    return True


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.9.8.7", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("::127.0.0.1", "loopback"),  # IPv4-compatible
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("::ffff:10.0.0.1", "private"),
        ("fd12:3456::1", "private"),  # ULA
        ("169.254.1.1", "link-local"),
        ("fe80::1%eth0", "link-local"),  # with a zone id
        ("169.254.169.254", "cloud metadata"),
        ("::ffff:169.254.169.254", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("2001:db8::1", "reserved"),
    ],
)
def test_internal_addresses_are_denied_by_default(address: str, kind: str) -> None:
    assert f"is a {kind} address" in denial(DEFAULT, address)


@pytest.mark.parametrize("address", ["0.0.0.0", "0.1.2.3", "::", "::ffff:0.0.0.0"])
def test_an_unspecified_address_is_denied_even_when_everything_is_allowed(address: str) -> None:
    everything = EgressPolicy.build(allow=["0.0.0.0/0", "::/0"])
    assert "is an unspecified address" in denial(everything, address)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111"])
def test_public_addresses_are_allowed_by_default(address: str) -> None:
    assert allowed(DEFAULT, address)


def test_the_message_names_the_address_and_how_to_allow_it() -> None:
    assert denial(DEFAULT, "10.0.0.1", 443, host="db.corp") == (
        "egress denied: db.corp (10.0.0.1):443 is a private address "
        "(FLOWSTREAM_EGRESS_ALLOW can allow it)"
    )
    assert denial(DEFAULT, "::1", 8080) == (
        "egress denied: [::1]:8080 is a loopback address (FLOWSTREAM_EGRESS_ALLOW can allow it)"
    )


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1", "0.0.0.0", "::"]
)
def test_a_flowstream_endpoint_is_denied_on_every_local_address(address: str) -> None:
    message = denial(DEV, address, 8080)
    assert message.endswith("is a flowstream endpoint")


def test_the_endpoint_message_reads_plainly() -> None:
    assert denial(DEV, "127.0.0.1", 8080) == (
        "egress denied: 127.0.0.1:8080 is a flowstream endpoint"
    )


def test_allowed_loopback_reaches_other_ports() -> None:
    assert allowed(DEV, "127.0.0.1", 8099)
    assert allowed(DEV, "::1", 8099)
    assert allowed(DEV, "::ffff:127.0.0.1", 8099)
    assert not allowed(DEV, "10.0.0.1", 8099)  # only loopback was allowed


def test_deny_wins_over_allow() -> None:
    policy = EgressPolicy.build(
        allow=["127.0.0.0/8", "10.0.0.0/8"], deny=["127.0.0.2", "10.9.0.0/16"]
    )
    assert allowed(policy, "127.0.0.1")
    assert allowed(policy, "10.1.0.1")
    assert "matches FLOWSTREAM_EGRESS_DENY entry '127.0.0.2'" in denial(policy, "127.0.0.2")
    assert "FLOWSTREAM_EGRESS_DENY entry '10.9.0.0/16'" in denial(policy, "10.9.3.4")


def test_a_deny_list_refuses_public_addresses_and_host_names() -> None:
    policy = EgressPolicy.build(deny=["93.184.216.0/24", "*.example.org", "evil.test:443"])
    assert "93.184.216.0/24" in denial(policy, "93.184.216.34")
    assert "*.example.org" in denial(policy, "93.184.217.1", host="api.example.org")
    assert "evil.test:443" in denial(policy, "93.184.217.1", 443, host="EVIL.test.")
    assert allowed(policy, "93.184.217.1", 80, host="evil.test")  # another port
    assert allowed(policy, "93.184.217.1", host="example.org")  # the wildcard is for subdomains


def test_host_name_and_port_entries_allow_exactly_that() -> None:
    policy = EgressPolicy.build(allow=["llm.internal:8000", "[fd00::5]:443"])
    assert allowed(policy, "10.0.0.5", 8000, host="llm.internal")
    assert not allowed(policy, "10.0.0.5", 8001, host="llm.internal")
    assert not allowed(policy, "10.0.0.5", 8000, host="other.internal")
    assert allowed(policy, "fd00::5", 443)


def test_default_deny_allows_only_the_allow_list() -> None:
    policy = EgressPolicy.build(allow=["api.example.com"], default="deny")
    assert allowed(policy, "93.184.216.34", host="api.example.com")
    assert "is not in FLOWSTREAM_EGRESS_ALLOW" in denial(policy, "93.184.216.34")


@pytest.mark.parametrize(
    "entry", ["10.0.0.0/33", "host:port", "[::1]x", "bad host!", "1.2.3.4:70000"]
)
def test_a_bad_entry_stops_the_engine_at_start_up(entry: str) -> None:
    with pytest.raises(ValidationError, match="egress"):
        EngineSettings(egress_deny=entry)


def test_settings_take_comma_or_space_separated_lists() -> None:
    settings = EngineSettings(egress_allow="127.0.0.0/8, ::1 api.example.com:443")
    assert settings.egress_allow == ["127.0.0.0/8", "::1", "api.example.com:443"]


def test_the_engine_protects_its_nats_servers_and_its_own_port() -> None:
    settings = EngineSettings(
        nats_url="nats://user:pw@10.0.0.9:4333,nats://nats-2", engine_port=9999
    )
    policy = policy_for(settings.model_copy(update={"egress_allow": ["10.0.0.0/8"]}))
    assert "flowstream endpoint" in denial(policy, "10.0.0.9", 4333)
    assert "flowstream endpoint" in denial(policy, "127.0.0.1", 9999)
    assert policy.protected_hosts == {"nats-2"}


# The backend: resolve once, check every address, connect to a checked address.


class FakeInner(httpcore.AsyncNetworkBackend):
    def __init__(self) -> None:
        self.connected: list[tuple[str, int]] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connected.append((host, port))
        return httpcore.AsyncNetworkStream()


def resolver_of(*answers: list[str]) -> Any:
    """A resolver that gives each answer in turn, as a rebinding DNS server would."""
    pending = list(answers)

    async def resolve(host: str, port: int) -> list[str]:
        return pending.pop(0) if len(pending) > 1 else pending[0]

    return resolve


async def test_dns_rebinding_cannot_reach_a_denied_address() -> None:
    inner = FakeInner()
    backend = EgressBackend(DEFAULT, resolver_of(["93.184.216.34"], ["127.0.0.1"]), inner)

    await backend.connect_tcp("rebind.test", 80)
    with pytest.raises(EgressRefused, match=r"rebind.test \(127.0.0.1\):80 is a loopback"):
        await backend.connect_tcp("rebind.test", 80)

    # The first connection went to the address that was checked, not to the name (which a
    # second resolution could have pointed anywhere); the second never reached the network.
    assert inner.connected == [("93.184.216.34", 80)]


async def test_one_denied_address_among_several_refuses_the_connection() -> None:
    inner = FakeInner()
    backend = EgressBackend(DEFAULT, resolver_of(["93.184.216.34", "10.0.0.1"]), inner)

    with pytest.raises(EgressRefused, match=r"10\.0\.0\.1"):
        await backend.connect_tcp("mixed.test", 443)
    assert inner.connected == []


async def test_a_protected_host_name_is_matched_by_its_addresses() -> None:
    policy = EgressPolicy.build(allow=["10.0.0.0/8"], protected=["nats.internal:4222"])

    async def resolve(host: str, port: int) -> list[str]:
        return ["10.0.0.7"]  # every name here, nats.internal included

    inner = FakeInner()
    backend = EgressBackend(policy, resolve, inner)
    with pytest.raises(EgressRefused, match="is a flowstream endpoint"):
        await backend.connect_tcp("alias.test", 4222)
    await backend.connect_tcp("alias.test", 4223)
    assert inner.connected == [("10.0.0.7", 4223)]


async def test_unix_sockets_are_refused() -> None:
    with pytest.raises(EgressRefused):
        await EgressBackend(DEV).connect_unix_socket("/var/run/docker.sock")


@pytest.mark.parametrize(
    "spelling", ["2130706433", "0x7f.1", "017700000001", "127.1", "0x7f000001"]
)
async def test_numeric_ipv4_spellings_resolve_to_loopback_and_are_refused(spelling: str) -> None:
    # The system resolver turns each spelling into the address; no name server is asked.
    assert await system_resolver(spelling, 80) == ["127.0.0.1"]
    inner = FakeInner()
    with pytest.raises(EgressRefused, match="is a loopback address"):
        await EgressBackend(DEFAULT, inner=inner).connect_tcp(spelling, 80)
    assert inner.connected == []
