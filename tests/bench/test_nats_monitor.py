"""What the benchmark reads from nats-server's monitoring port: messages per process, and
whether the stack's queues are idle."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from flowstream_launcher.nats_server import NatsServer, free_port, start_nats_server
from flowstream_shared import subjects
from flowstream_shared.settings import NatsSettings
from flowstream_shared.topology import ensure_topology

from bench.nats_monitor import NatsMonitor, local_ports
from bench.settle import idle


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[NatsServer]:
    # A server of the benchmark's own, as the benchmark's stacks have: never the session's.
    started = await start_nats_server(free_port(), tmp_path / "nats")
    yield started
    await started.stop()


def monitor_of(server: NatsServer) -> NatsMonitor:
    return NatsMonitor([f"http://127.0.0.1:{server.monitor_port}"])


async def test_messages_are_counted_for_the_process_that_owns_the_connection(
    server: NatsServer,
) -> None:
    monitor = monitor_of(server)
    nc = await nats.connect(server.url)
    try:
        sub = await nc.subscribe("bench.test")
        await nc.flush()
        before = (await monitor.messages({"this": os.getpid()}))["this"]
        for _ in range(25):
            await nc.publish("bench.test", b"x")
        for _ in range(25):
            await sub.next_msg(timeout=5)
        after = (await monitor.messages({"this": os.getpid()}))["this"]
    finally:
        await nc.close()
    assert after.published - before.published == 25
    assert after.received - before.received == 25


async def test_a_connection_of_another_process_is_not_counted(server: NatsServer) -> None:
    nc = await nats.connect(server.url)
    try:
        await nc.publish("bench.test", b"x")
        await nc.flush()
        # The server's own pid owns no client port of this connection.
        counted = await monitor_of(server).messages({"server": server.process.pid})
    finally:
        await nc.close()
    assert counted["server"].published == 0


def test_local_ports_lists_a_listening_socket() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert sock.getsockname()[1] in local_ports(os.getpid())


async def test_the_stack_is_idle_only_when_the_run_queue_is_empty_in_every_band(
    server: NatsServer,
) -> None:
    monitor = monitor_of(server)
    assert not await idle(monitor)  # nothing declared yet: not a stack at rest
    nc = await nats.connect(server.url)
    try:
        js = nc.jetstream()
        await ensure_topology(js, NatsSettings(nats_url=server.address))
        await js.add_consumer(subjects.EVENTS_STREAM, durable_name=subjects.HISTORY_CONSUMER)
        assert await idle(monitor)
        owner = subjects.owner_token("bench")
        for band in (subjects.PRIORITY_BANDS - 1, 0):  # the highest band, then the lowest
            await js.publish(subjects.submit_subject(f"r{band}", band, owner), b"{}")
            assert not await idle(monitor)
            await js.purge_stream(subjects.RUNS_STREAM)
            assert await idle(monitor)
    finally:
        await nc.close()
