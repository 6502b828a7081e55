"""The NATS topology of a scenario: one `nats-server -js`, or a JetStream cluster of three on
loopback routes, described by ports and rendered as server config files.

Which node leads is asked of the servers themselves: the meta leader from a node's monitoring
port (`/jsz`), a stream's leader from JetStream's stream info.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from flowstream_launcher.nats_auth import ClusterNode, NatsAuth, render_config
from flowstream_launcher.nats_server import free_port

CLUSTER_NAME = "chaos"


@dataclass(frozen=True)
class NodeAddress:
    name: str
    port: int
    monitor_port: int
    route_port: int | None  # None: a single server, no cluster
    store_dir: Path

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://127.0.0.1:{self.monitor_port}"


@dataclass(frozen=True)
class Topology:
    nodes: list[NodeAddress]

    @classmethod
    def single(cls, work_dir: Path) -> Topology:
        return cls([_node("n1", work_dir, clustered=False)])

    @classmethod
    def cluster(cls, work_dir: Path, size: int = 3) -> Topology:
        return cls([_node(f"n{i}", work_dir, clustered=True) for i in range(1, size + 1)])

    @property
    def clustered(self) -> bool:
        return len(self.nodes) > 1

    @property
    def replicas(self) -> int:
        return len(self.nodes)

    @property
    def seed_urls(self) -> str:
        """`FLOWSTREAM_NATS_URL`: every node, comma-separated."""
        return ",".join(node.url for node in self.nodes)

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def node(self, name: str) -> NodeAddress:
        return next(node for node in self.nodes if node.name == name)

    def config(self, node: NodeAddress, auth: NatsAuth) -> str:
        """The server's config file: the launcher's, with authorization on, and the cluster
        block of a clustered topology."""
        cluster = None
        if node.route_port is not None:
            peers = tuple(o.route_port for o in self.nodes if o is not node and o.route_port)
            cluster = ClusterNode(node.name, CLUSTER_NAME, node.route_port, peers)
        return render_config(auth, node.port, node.monitor_port, node.store_dir, cluster=cluster)


def _node(name: str, work_dir: Path, clustered: bool) -> NodeAddress:
    return NodeAddress(
        name=name,
        port=free_port(),
        monitor_port=free_port(),
        route_port=free_port() if clustered else None,
        store_dir=work_dir / "nats" / name,
    )


async def meta_leader(topology: Topology, up: set[str]) -> str | None:
    """The name of the JetStream meta leader, as the first node that answers says."""
    async with httpx.AsyncClient(trust_env=False, timeout=2.0) as client:
        for node in topology.nodes:
            if node.name not in up:
                continue
            try:
                body: dict[str, Any] = (await client.get(f"{node.monitor_url}/jsz")).json()
            except (httpx.HTTPError, ValueError):
                continue
            leader = (body.get("meta_cluster") or {}).get("leader")
            if leader:
                return str(leader)
    return None


@dataclass(frozen=True)
class ClusterHealth:
    healthy: bool
    reason: str


async def cluster_health(topology: Topology) -> ClusterHealth:
    """Whole again: every node answers `/healthz` (JetStream current with the meta leader, every
    stream and consumer it hosts current), every node names the same meta leader, and every
    stream has a leader that counts all its replicas current."""
    async with httpx.AsyncClient(trust_env=False, timeout=2.0) as client:
        leaders: set[str | None] = set()
        for node in topology.nodes:
            try:
                health = await client.get(f"{node.monitor_url}/healthz")
                if health.status_code != 200:
                    return ClusterHealth(False, f"{node.name}: {health.text.strip()[:200]}")
                body: dict[str, Any] = (
                    await client.get(f"{node.monitor_url}/jsz", params={"streams": "true"})
                ).json()
            except (httpx.HTTPError, ValueError) as exc:
                return ClusterHealth(False, f"{node.name}: {type(exc).__name__}")
            leaders.add((body.get("meta_cluster") or {}).get("leader"))
            for account in body.get("account_details") or []:
                for stream in account.get("stream_detail") or []:
                    unwell = _stream_unwell(stream, node.name)
                    if unwell:
                        return ClusterHealth(False, f"{node.name}: {unwell}")
        if len(leaders) != 1 or None in leaders:
            return ClusterHealth(False, f"meta leaders named: {sorted(map(str, leaders))}")
    return ClusterHealth(True, "")


def _stream_unwell(stream: dict[str, Any], node: str) -> str | None:
    cluster = stream.get("cluster") or {}
    name = stream.get("name")
    if not cluster.get("leader"):
        return f"stream {name} has no leader"
    if cluster.get("leader") != node:
        return None  # only the leader knows how far its followers are
    behind = [r.get("name") for r in cluster.get("replicas") or [] if not r.get("current")]
    if behind:
        return f"stream {name}: replicas {behind} not current"
    return None


async def wait_healthy(topology: Topology, timeout_s: float) -> float:
    """Wait until :func:`cluster_health` says the cluster is whole; answer how long it took."""
    started = time.monotonic()
    health = ClusterHealth(False, "not asked yet")
    while time.monotonic() - started < timeout_s:
        health = await cluster_health(topology)
        if health.healthy:
            return time.monotonic() - started
        # Monitoring endpoints only: nothing to subscribe to.
        await asyncio.sleep(0.25)
    raise TimeoutError(f"the cluster was not whole within {timeout_s:g} s: {health.reason}")
