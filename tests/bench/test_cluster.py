"""The benchmark's 3-node JetStream cluster forms, replicates a stream three times, and its
monitoring ports are read from each stream's leader."""

from __future__ import annotations

from pathlib import Path

import nats

from bench.cluster import NODES, jetstream_cluster, monitor_of, pids


async def test_three_nodes_form_a_cluster_that_keeps_three_replicas(tmp_path: Path) -> None:
    async with jetstream_cluster(tmp_path) as cluster:
        assert len(pids(cluster)) == NODES
        nc = await nats.connect(cluster.url.split(","))
        try:
            js = nc.jetstream()
            info = await js.add_stream(name="BENCH", subjects=["bench.>"], num_replicas=NODES)
            await js.publish("bench.one", b"x")
        finally:
            await nc.close()
        assert info.cluster is not None
        assert len(info.cluster.replicas or []) == NODES - 1  # the leader plus two others
        streams, _ = await monitor_of(cluster).jetstream()
        assert streams["BENCH"]["state"]["last_seq"] == 1  # read once, from its leader
