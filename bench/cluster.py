"""Single node vs a 3-node JetStream cluster with replicas 3, on loopback.

The launcher's cluster (`flowstream_launcher.nats_cluster`: three `nats-server` processes, each
with its own store, client, route and monitoring ports, authorization on) is started first; the
launcher then starts the stack on it, as it would on any external NATS (`FLOWSTREAM_NATS_URL`,
every node), each service as its own NATS identity, with `FLOWSTREAM_STREAM_REPLICAS=3`: every
stream and bucket is stored three times, and a publish is acknowledged once a majority has it.
Measured at 1 and 32 connections, against the single-node figures of the same run.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from flowstream_launcher.child_stack import ChildStack, child_stack
from flowstream_launcher.dev_auth import issue_token
from flowstream_launcher.nats_cluster import NatsCluster, start_nats_cluster

from bench import api, load, stack_processes, wrk
from bench.nats_monitor import NatsMonitor
from bench.procs import log
from bench.settings import ROOT, BenchSettings
from bench.settle import settled
from bench.workflows import THREE_STEP, run_target, store

NODES = 3
CLUSTER_NAME = "flowstream-bench"


@asynccontextmanager
async def jetstream_cluster(workdir: Path) -> AsyncIterator[NatsCluster]:
    """Three nodes agreeing on a JetStream meta leader: replicated streams can be created."""
    cluster = await start_nats_cluster(workdir / "nats", NODES, name=CLUSTER_NAME)
    try:
        yield cluster
    finally:
        await cluster.stop()


def monitor_of(cluster: NatsCluster) -> NatsMonitor:
    return NatsMonitor([f"http://127.0.0.1:{s.monitor_port}" for s in cluster.servers])


def pids(cluster: NatsCluster) -> dict[str, int]:
    """The nodes' processes, named as the CPU table names them."""
    return {f"nats-server-{i}": s.process.pid for i, s in enumerate(cluster.servers, start=1)}


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
                Path(tmp) / "data", cwd=ROOT, extra_env=extra_env, nats=cluster
            ) as stack:
                token = issue_token(stack.secret, "bench")
                async with api.client(stack.base_url, token) as client:
                    path = await store(client, THREE_STEP)
                target = run_target(stack.base_url, path, token)
                processes = {
                    **stack_processes.processes(stack, embedded_nats=False),
                    **pids(cluster),
                }
                monitor = monitor_of(cluster)
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
