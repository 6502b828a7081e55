"""Runs on a JetStream cluster of three with every stream replicated (R3).

A replicated stream checks one `Nats-Expected-Last-Subject-Sequence` per check subject at a
time and refuses the others while it is proposed (error 10164); every event of a run is fenced
on its claim marker, so the engine must not pipeline a run's events there.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest
from flowstream_engine.app import create_app
from flowstream_engine.settings import EngineSettings
from flowstream_launcher.nats_cluster import NatsCluster, start_nats_cluster
from flowstream_launcher.nats_server import NatsServerError
from flowstream_shared.nats_access import Identity
from flowstream_shared.settings import NatsSettings
from flowstream_shared.topology import ensure_topology

from tests.conftest import IN_CI
from tests.integration.conftest import command, submit
from tests.support import read_run_log

REPLICAS = 3


@pytest.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[NatsCluster]:
    store: Path = tmp_path_factory.mktemp("cluster")
    try:
        started = await start_nats_cluster(store, REPLICAS)
    except NatsServerError:
        if IN_CI:
            raise
        pytest.skip("nats-server is not available")
    nc = await nats.connect(started.url.split(","))
    await ensure_topology(
        nc.jetstream(), NatsSettings(nats_url=started.address, stream_replicas=REPLICAS)
    )
    await nc.close()
    yield started
    await started.stop()


def chatty(chunks: int) -> dict[str, Any]:
    """START → three streaming TEMPLATE nodes → END: events emitted in bursts."""
    text = " ".join(f"w{i}" for i in range(chunks))
    ids = ["a", "b", "c"]
    return {
        "name": "chatty",
        "nodes": [
            {"id": "start", "type": "START", "config": {"inputs": []}},
            *(
                {"id": i, "type": "TEMPLATE", "config": {"template": text, "stream": True}}
                for i in ids
            ),
            {"id": "end", "type": "END", "config": {"outputs": {"last": "{{c.text}}"}}},
        ],
        "connections": [
            {"from": a, "to": b} for a, b in zip(["start", *ids], [*ids, "end"], strict=True)
        ],
    }


async def test_runs_on_a_replicated_log_finish_gap_free(cluster: NatsCluster) -> None:
    engine = create_app(
        EngineSettings(
            nats_url=cluster.address,
            nats_user=Identity.ENGINE.value,
            nats_password=cluster.auth.passwords[Identity.ENGINE.value],
            stream_replicas=REPLICAS,
        )
    )
    await engine.start()
    nc = await nats.connect(cluster.url.split(","))
    try:
        commands = [command(chatty(20), {}) for _ in range(4)]
        for cmd in commands:
            await submit(nc, cmd)
        logs = await asyncio.gather(
            *(read_run_log(cluster.url.split(",")[0], cmd.run_id) for cmd in commands)
        )
    finally:
        await nc.close()
        await engine.stop()

    for events in logs:
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert [e["event"] for e in events].count("workflow_finished") == 1
        assert events[-1]["data"]["status"] == "succeeded", events[-1]["data"]
        assert len(events) >= 15  # emitted in bursts: started and finished back to back
