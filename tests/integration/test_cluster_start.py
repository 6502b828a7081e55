"""A gateway declaring the topology while a JetStream cluster is not answering yet.

A cluster without a meta leader (its nodes still starting, or electing after a node was lost)
lets JetStream API requests time out. Declaring the streams and buckets waits for it rather than
failing the gateway's start-up.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import nats
import pytest
from flowstream_launcher.nats_auth import ClusterNode, NatsAuth
from flowstream_launcher.nats_server import (
    NatsServer,
    NatsServerError,
    free_port,
    start_nats_server,
)
from flowstream_shared import subjects
from flowstream_shared.nats_access import Identity
from flowstream_shared.settings import NatsSettings
from flowstream_shared.topology import ensure_topology

from tests.conftest import IN_CI


class _Noticed(logging.Handler):
    """Sets `event` when a record's message contains `text`."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.event.set()


async def test_declaring_the_topology_waits_for_a_cluster_still_electing(tmp_path: Path) -> None:
    auth = NatsAuth.generate()
    routes = [free_port() for _ in range(3)]
    nodes = [
        ClusterNode(f"late-{i}", "late", port, tuple(p for p in routes if p != port))
        for i, port in enumerate(routes)
    ]
    servers: list[NatsServer] = []
    try:
        try:
            servers.append(
                await start_nats_server(free_port(), tmp_path / "n0", auth=auth, cluster=nodes[0])
            )
        except NatsServerError:
            if IN_CI:
                raise
            pytest.skip("nats-server is not available")
        # One node of three: no quorum, no meta leader; JetStream requests go unanswered.
        nc = await nats.connect(auth.url_for(Identity.ADMIN, servers[0].address))
        noticed = _Noticed("JetStream is not answering")
        logging.getLogger("flowstream_shared.topology").addHandler(noticed)
        try:
            settings = NatsSettings(nats_url=servers[0].address, stream_replicas=3)
            declaring = asyncio.create_task(ensure_topology(nc.jetstream(), settings))
            waiting = asyncio.create_task(noticed.event.wait())
            await asyncio.wait([declaring, waiting], return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
            assert not declaring.done(), f"gave up on a cluster still forming: {declaring!r}"
            # The rest of the cluster arrives; a meta leader is elected.
            for i in (1, 2):
                servers.append(
                    await start_nats_server(
                        free_port(), tmp_path / f"n{i}", auth=auth, cluster=nodes[i]
                    )
                )
            async with asyncio.timeout(90):
                await declaring
            info = await nc.jetstream().stream_info(subjects.EVENTS_STREAM)
            assert info.config.num_replicas == 3
        finally:
            logging.getLogger("flowstream_shared.topology").removeHandler(noticed)
            await nc.close()
    finally:
        await asyncio.gather(*(server.stop() for server in servers))
