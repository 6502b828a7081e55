"""The NATS topology of a scenario: one `nats-server -js`, or a JetStream cluster of three on
loopback routes, described by ports and rendered as server config files.

Which node leads is asked of the servers themselves: the meta leader from a node's monitoring
port (`/jsz`), a stream's leader from JetStream's stream info.
"""

from __future__ import annotations

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
