"""A JetStream cluster of `nats-server` processes on loopback routes, for replicated streams
(`FLOWSTREAM_STREAM_REPLICAS=3`) in tests, benchmarks and the chaos suite."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import httpx
from flowstream_shared.nats_access import Identity

from flowstream_launcher.nats_auth import ClusterNode, NatsAuth
from flowstream_launcher.nats_server import (
    NatsServer,
    NatsServerError,
    free_port,
    start_nats_server,
)


@dataclass
class NatsCluster:
    servers: list[NatsServer]
    auth: NatsAuth

    @property
    def address(self) -> str:
        """Every node, comma-separated (`FLOWSTREAM_NATS_URL`); connections authenticate."""
        return ",".join(server.address for server in self.servers)

    @property
    def url(self) -> str:
        """The admin identity's URL of every node: for operators' tools and tests."""
        return ",".join(self.auth.url_for(Identity.ADMIN, s.address) for s in self.servers)

    async def stop(self) -> None:
        await asyncio.gather(*(server.stop() for server in self.servers))


async def start_nats_cluster(
    store_root: Path, size: int = 3, name: str = "flowstream", auth: NatsAuth | None = None
) -> NatsCluster:
    """Start `size` servers routed to each other; return once they agree on a meta leader (a
    replicated stream can be created from then on)."""
    auth = auth or NatsAuth.generate()
    routes = [free_port() for _ in range(size)]
    nodes = [
        ClusterNode(f"{name}-{i + 1}", name, port, tuple(p for p in routes if p != port))
        for i, port in enumerate(routes)
    ]
    started = await asyncio.gather(
        *(
            start_nats_server(free_port(), store_root / node.name, auth=auth, cluster=node)
            for node in nodes
        ),
        return_exceptions=True,
    )
    servers = [s for s in started if isinstance(s, NatsServer)]
    cluster = NatsCluster(servers, auth)
    failure = next((s for s in started if isinstance(s, BaseException)), None)
    try:
        if failure is not None:
            raise failure
        await _meta_leader_elected(servers)
    except BaseException:
        await cluster.stop()
        raise
    return cluster


async def _meta_leader_elected(servers: list[NatsServer], timeout_s: float = 30.0) -> None:
    # The monitoring endpoint is the only place a server says who leads; nothing to subscribe to.
    async with httpx.AsyncClient(trust_env=False, timeout=2.0) as client:
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    leaders = {await _meta_leader(client, server) for server in servers}
                    if len(leaders) == 1 and None not in leaders:
                        return
                    await asyncio.sleep(0.1)
        except TimeoutError:
            raise NatsServerError(f"no JetStream meta leader within {timeout_s:g}s") from None


async def _meta_leader(client: httpx.AsyncClient, server: NatsServer) -> str | None:
    try:
        body = (await client.get(f"http://127.0.0.1:{server.monitor_port}/jsz")).json()
    except (httpx.HTTPError, ValueError):
        return None
    leader = (body.get("meta_cluster") or {}).get("leader")
    return str(leader) if leader else None
