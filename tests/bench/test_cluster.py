"""The benchmark's 3-node JetStream cluster forms, and replicates a stream three times."""

from __future__ import annotations

from pathlib import Path

import nats

from bench.cluster import NODES, jetstream_cluster


async def test_three_nodes_form_a_cluster_that_keeps_three_replicas(tmp_path: Path) -> None:
    async with jetstream_cluster(tmp_path) as cluster:
        nc = await nats.connect(cluster.nodes[0].url)
        try:
            js = nc.jetstream()
            info = await js.add_stream(name="BENCH", subjects=["bench.>"], num_replicas=NODES)
            await js.publish("bench.one", b"x")
        finally:
            await nc.close()
        assert info.cluster is not None
        assert len(info.cluster.replicas or []) == NODES - 1  # the leader plus two others
        streams, _ = await cluster.monitor.jetstream()
        assert streams["BENCH"]["state"]["last_seq"] == 1  # read once, from its leader
