"""A gateway's writes and run index reads wait through a stream leader's election on a
JetStream cluster.

With the stream's leader gone, a publish is answered "no responders" and a read the leader
would answer goes unanswered until a follower takes over (a few seconds): the gateway asks
again instead of answering 503.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import nats
import pytest
from flowstream_gateway.election import read_through_election, through_election
from flowstream_launcher.nats_cluster import NatsCluster, start_nats_cluster
from flowstream_launcher.nats_server import NatsServerError
from flowstream_shared.nats_access import Identity
from flowstream_shared.topology import until_answered
from nats.aio.client import Client
from nats.js.api import KeyValueConfig, StreamConfig

from tests.conftest import IN_CI

STREAM = "ELECTION"


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[NatsCluster]:
    try:
        started = await start_nats_cluster(tmp_path, 3, name="election")
    except NatsServerError:
        if IN_CI:
            raise
        pytest.skip("nats-server is not available")
    yield started
    await started.stop()


async def _away_from_the_leader_of(cluster: NatsCluster, stream: str) -> tuple[Client, int]:
    """A connection to a node that does not lead `stream` (as a gateway's may be), and the
    index of the node that does."""
    admin = await nats.connect(cluster.url.split(","))
    info = await admin.jetstream().stream_info(stream)
    await admin.close()
    assert info.cluster is not None and info.cluster.leader is not None
    leader = int(info.cluster.leader.rsplit("-", 1)[-1]) - 1  # nodes are election-1..3
    survivor = next(s for i, s in enumerate(cluster.servers) if i != leader)
    return await nats.connect(cluster.auth.url_for(Identity.ADMIN, survivor.address)), leader


async def _kill(cluster: NatsCluster, node: int) -> None:
    cluster.servers[node].process.kill()
    await cluster.servers[node].process.wait()


async def test_a_write_waits_through_the_stream_leaders_election(cluster: NatsCluster) -> None:
    admin = await nats.connect(cluster.url.split(","))
    config = StreamConfig(name=STREAM, subjects=["election.>"], num_replicas=3)
    await until_answered(partial(admin.jetstream().add_stream, config), STREAM)
    await admin.close()
    nc, leader = await _away_from_the_leader_of(cluster, STREAM)
    try:
        await _kill(cluster, leader)
        ack = await through_election(
            partial(nc.jetstream().publish, "election.run", b"{}", headers={"Nats-Msg-Id": "r1"})
        )
        assert ack.stream == STREAM and ack.seq == 1
        assert (await nc.jetstream().stream_info(STREAM)).state.messages == 1
    finally:
        await nc.close()


async def test_a_run_index_read_waits_through_the_buckets_election(cluster: NatsCluster) -> None:
    """The run index takes no direct gets (a follower may not have a run just submitted):
    only its stream's leader answers, and none does while one is elected."""
    admin = await nats.connect(cluster.url.split(","))
    bucket = KeyValueConfig(bucket="runs", replicas=3)
    kv = await until_answered(partial(admin.jetstream().create_key_value, bucket), "runs")
    await kv.put("run-1", b"owner")
    await admin.close()
    nc, leader = await _away_from_the_leader_of(cluster, "KV_runs")
    try:
        survivor_kv = await nc.jetstream().key_value("runs")  # as the gateway holds it
        await _kill(cluster, leader)
        entry = await read_through_election(partial(survivor_kv.get, "run-1"))
        assert entry.value == b"owner"
    finally:
        await nc.close()
