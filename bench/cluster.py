"""Single node vs a 3-node JetStream cluster with replicas 3, on loopback.

Three `nats-server` processes (the binary the launcher uses) form one cluster, each with its own
store, client, route and monitoring ports. The launcher then starts the stack on it, as it would
on any external NATS (`FLOWSTREAM_NATS_URL`, here the first node; clients learn the others from
it), with `FLOWSTREAM_STREAM_REPLICAS=3`: every stream and bucket is stored three times, and a
publish is acknowledged once a majority has it. Measured at 1 and 32 connections, against the
single-node figures of the same run.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from flowstream_launcher.child_stack import ChildStack, child_stack
from flowstream_launcher.dev_auth import issue_token
from flowstream_launcher.nats_server import free_port, nats_server_binary

from bench import api, load, stack_processes, wrk
from bench.nats_monitor import NatsMonitor
from bench.procs import Helper, helper_process, log
from bench.settings import ROOT, BenchSettings
from bench.settle import settled
from bench.workflows import THREE_STEP, run_target, store

NODES = 3
CLUSTER_NAME = "flowstream-bench"


@dataclass(frozen=True)
class Node:
    name: str
    client_port: int
    route_port: int
    monitor_port: int

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.client_port}"

    @property
    def monitor_url(self) -> str:
        return f"http://127.0.0.1:{self.monitor_port}"


def node_config(node: Node, nodes: list[Node], store_dir: Path) -> str:
    routes = ", ".join(f'"nats-route://127.0.0.1:{n.route_port}"' for n in nodes)
    return (
        f'server_name: "{node.name}"\n'
        f'listen: "127.0.0.1:{node.client_port}"\n'
        f'http: "127.0.0.1:{node.monitor_port}"\n'
        f'jetstream {{ store_dir: "{store_dir}" }}\n'
        f'cluster {{\n  name: "{CLUSTER_NAME}"\n'
        f'  listen: "127.0.0.1:{node.route_port}"\n  routes: [{routes}]\n}}\n'
    )


@dataclass(frozen=True)
class Cluster:
    nodes: list[Node]
    helpers: list[Helper]

    @property
    def monitor(self) -> NatsMonitor:
        return NatsMonitor([n.monitor_url for n in self.nodes])

    @property
    def pids(self) -> dict[str, int]:
        return {n.name: h.process.pid for n, h in zip(self.nodes, self.helpers, strict=True)}


async def _meta_leader_elected(cluster: Cluster, timeout_s: float = 60.0) -> None:
    """Every node up and agreeing on a JetStream meta leader: streams can be created."""
    async with httpx.AsyncClient(trust_env=False, timeout=2) as client:
        async with asyncio.timeout(timeout_s):
            while True:
                leaders: set[str | None] = set()
                for node, helper in zip(cluster.nodes, cluster.helpers, strict=True):
                    if helper.process.returncode is not None:
                        raise RuntimeError(f"{node.name} exited:\n{helper.tail()}")
                    try:
                        body = (await client.get(f"{node.monitor_url}/jsz")).json()
                    except (httpx.HTTPError, ValueError):
                        leaders.add(None)
                        continue
                    leaders.add((body.get("meta_cluster") or {}).get("leader"))
                if None not in leaders and "" not in leaders and len(leaders) == 1:
                    return
                await asyncio.sleep(0.2)


@asynccontextmanager
async def jetstream_cluster(workdir: Path) -> AsyncIterator[Cluster]:
    nodes = [Node(f"bench-{i}", free_port(), free_port(), free_port()) for i in range(1, NODES + 1)]
    async with AsyncExitStack() as exits:
        helpers = []
        for node in nodes:
            config = workdir / f"{node.name}.conf"
            config.write_text(node_config(node, nodes, workdir / node.name))
            argv = [nats_server_binary(), "-c", str(config)]
            helpers.append(await exits.enter_async_context(helper_process(node.name, argv)))
        cluster = Cluster(nodes, helpers)
        await _meta_leader_elected(cluster)
        yield cluster


def _complaints(stack: ChildStack, last: int = 4) -> str:
    """The services' last warnings and errors: why runs do not finish on the cluster."""
    lines = [line for line in stack.output if " WARNING " in line or " ERROR " in line]
    return "\n".join(lines[-last:]) or "(nothing)"


async def versus_single_node(settings: BenchSettings, single: dict[str, Any]) -> dict[str, Any]:
    """The 3-node cluster's figures, and their ratio to the single node's (`single` is the
    single-node ladder of this run)."""
    with tempfile.TemporaryDirectory(prefix="flowstream-bench-cluster-") as tmp:
        async with jetstream_cluster(Path(tmp)) as cluster:
            extra_env = {"FLOWSTREAM_STREAM_REPLICAS": str(NODES)}
            async with child_stack(
                Path(tmp) / "data",
                cwd=ROOT,
                extra_env=extra_env,
                nats_url=cluster.nodes[0].url,
            ) as stack:
                token = issue_token(stack.secret, "bench")
                async with api.client(stack.base_url, token) as client:
                    path = await store(client, THREE_STEP)
                target = run_target(stack.base_url, path, token)
                processes = {
                    **stack_processes.processes(stack, embedded_nats=False),
                    **cluster.pids,
                }
                monitor = cluster.monitor
                try:
                    await load.warm_up(target)
                except wrk.WrkError as exc:
                    raise RuntimeError(f"{exc}; the stack said:\n{_complaints(stack)}") from exc
                detail: dict[str, Any] = {}
                for connections in (1, 32):
                    await settled(monitor)
                    log(f"cluster: {connections} connection(s), {settings.seconds:g} s")
                    detail[f"c{connections}"] = await load.measure(
                        target, connections, settings.seconds, processes
                    )
    single_c32 = single.get("runs_per_s")
    runs_per_s = detail["c32"]["runs_per_s"]
    return {
        "nodes": NODES,
        "replicas": NODES,
        **load.summary(detail),
        "single_node_runs_per_s": single_c32,
        "vs_single_node": round(runs_per_s / single_c32, 3) if single_c32 else None,
        "detail": detail,
    }
