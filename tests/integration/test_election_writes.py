"""A submission's writes wait through a stream leader's election on a JetStream cluster.

With the stream's leader gone, a publish is answered "no responders" until a follower takes
over (a few seconds): the gateway sends it again instead of refusing the run with a 503.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import nats
import pytest
from flowstream_gateway.election import through_election
from flowstream_launcher.nats_cluster import NatsCluster, start_nats_cluster
from flowstream_launcher.nats_server import NatsServerError
from flowstream_shared.nats_access import Identity
from nats.js.api import StreamConfig

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


async def test_a_write_waits_through_the_stream_leaders_election(cluster: NatsCluster) -> None:
    admin = await nats.connect(cluster.url.split(","))
    js = admin.jetstream()
    await js.add_stream(StreamConfig(name=STREAM, subjects=["election.>"], num_replicas=3))
    info = await js.stream_info(STREAM)
    assert info.cluster is not None and info.cluster.leader is not None
    await admin.close()
    leader = int(info.cluster.leader.rsplit("-", 1)[-1]) - 1  # nodes are election-1..3
    survivor = next(s for i, s in enumerate(cluster.servers) if i != leader)
    # A gateway connected to a node that stays up, while the stream's leader goes away.
    nc = await nats.connect(cluster.auth.url_for(Identity.ADMIN, survivor.address))
    try:
        cluster.servers[leader].process.kill()
        await cluster.servers[leader].process.wait()
        ack = await through_election(
            partial(nc.jetstream().publish, "election.run", b"{}", headers={"Nats-Msg-Id": "r1"})
        )
        assert ack.stream == STREAM and ack.seq == 1
        assert (await nc.jetstream().stream_info(STREAM)).state.messages == 1
    finally:
        await nc.close()
