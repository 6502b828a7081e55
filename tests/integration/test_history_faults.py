"""History under faults: killed mid-stream, and the database down while runs finish.

History runs as its own process here, so it can be killed for real; events are published into
JetStream exactly as an engine publishes them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nats
from flowstream_history.projection import Delivered
from flowstream_history.store import ExecutionStore
from flowstream_history.store.mongo import MongoStore
from flowstream_history.store.sqlite import SqliteStore
from flowstream_launcher.nats_server import NatsServer, free_port
from flowstream_shared import subjects
from flowstream_shared.commands import RunOwner
from flowstream_shared.events import RunStatus
from flowstream_shared.nats_access import Identity
from flowstream_shared.settings import NatsSettings
from flowstream_shared.topology import ensure_topology
from nats.aio.client import Client

from tests.history_support import run_events
from tests.mongo.server import start_ferretdb
from tests.support import GREET, history_caught_up

READY = b"history ready"
UNAVAILABLE = b"execution store unavailable"
Run = tuple[RunOwner, list[Delivered]]


class HistoryProcess:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[bytes] = []
        self._waiters: list[tuple[bytes, asyncio.Future[None]]] = []
        self._relay = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stderr is not None
        async for line in self.process.stderr:
            self.lines.append(line)
            for marker, waiter in self._waiters:
                if marker in line and not waiter.done():
                    waiter.set_result(None)

    async def logged(self, marker: bytes, within_s: float = 30) -> None:
        """Wait until the process logs `marker` (an event on its output, not a poll)."""
        if any(marker in line for line in self.lines):
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append((marker, waiter))
        await asyncio.wait_for(waiter, within_s)

    async def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()
        self._relay.cancel()


async def declare_topology(server: NatsServer) -> None:
    """What a gateway declares at its start; history waits for it."""
    client = await nats.connect(server.url)
    try:
        await ensure_topology(client.jetstream(), NatsSettings(nats_url=server.url))
    finally:
        await client.close()


@asynccontextmanager
async def history_process(
    server: NatsServer, env: Mapping[str, str]
) -> AsyncIterator[HistoryProcess]:
    await declare_topology(server)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flowstream_history",
        env={
            **os.environ,
            "FLOWSTREAM_NATS_URL": server.address,
            **server.auth.env_for(Identity.HISTORY),
            "FLOWSTREAM_HISTORY_PORT": str(free_port()),
            # Unacknowledged events come back quickly after a kill; retries stay short.
            "FLOWSTREAM_HISTORY_ACK_WAIT_S": "2",
            "FLOWSTREAM_HISTORY_RETRY_MAX_S": "0.5",
            **env,
        },
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    history = HistoryProcess(process)
    try:
        await history.logged(READY)
        yield history
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()


async def publish(nc: Client, runs: list[Run]) -> None:
    js = nc.jetstream()
    index = await js.key_value(subjects.RUNS_BUCKET)
    for owner, events in runs:
        await index.put(owner.run_id, owner.model_dump_json().encode())
        for delivered in events:
            run = subjects.RunAddress.of(owner.user_id, delivered.workflow_id, owner.run_id)
            await js.publish(
                run.ingest_subject(delivered.event.event.value),
                delivered.payload,
                headers={"Nats-Msg-Id": subjects.event_msg_id(owner.run_id, delivered.event.seq)},
            )


async def make_runs(count: int) -> list[Run]:
    return [
        await run_events(GREET, {"name": f"r{i}"}, workflow_id="wf-faults") for i in range(count)
    ]


async def assert_recorded_once(store: ExecutionStore, runs: list[Run]) -> None:
    for owner, events in runs:
        record = await store.get_run(owner.user_id, owner.run_id)
        assert record is not None, owner.run_id
        assert record.status == RunStatus.SUCCEEDED and record.last_seq == len(events)
        timeline = await store.timeline(owner.run_id)
        assert [t.seq for t in timeline] == list(range(1, len(events) + 1))
        assert len(await store.nodes(owner.run_id)) == 3


async def _with_store(
    store: ExecutionStore, check: Callable[[ExecutionStore], Awaitable[Any]]
) -> None:
    await store.open()
    try:
        await check(store)
    finally:
        await store.close()


async def test_history_killed_mid_stream_loses_nothing(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    runs = await make_runs(20)
    env = {"FLOWSTREAM_DATA_DIR": str(tmp_path)}
    nc = await nats.connect(nats_server.url)
    try:
        async with history_process(nats_server, env) as first:
            await publish(nc, runs[:10])
            await first.kill()
        await publish(nc, runs[10:])
        async with history_process(nats_server, env):
            await history_caught_up(nats_server.url)
    finally:
        await nc.close()
    await _with_store(
        SqliteStore(tmp_path / "history.sqlite3"), lambda s: assert_recorded_once(s, runs)
    )


async def test_database_down_while_50_runs_finish_loses_and_doubles_nothing(
    nats_server: NatsServer, tmp_path: Path, mongodb_uri: str
) -> None:
    # `mongodb_uri` guarantees the FerretDB binary (built, or a CI failure); this test runs its
    # own server on top, one it can stop and start again.
    port = free_port()
    database = f"faults_{os.getpid()}"
    uri = f"mongodb://127.0.0.1:{port}/{database}"
    before, during = await make_runs(3), await make_runs(50)
    nc = await nats.connect(nats_server.url)
    ferret = await start_ferretdb(port, tmp_path / "ferret")
    try:
        async with history_process(nats_server, {"FLOWSTREAM_MONGODB_URI": uri}) as history:
            await publish(nc, before)
            await history_caught_up(nats_server.url)
            await ferret.stop()
            await publish(nc, during)
            await history.logged(UNAVAILABLE)
            info = await nc.jetstream().consumer_info(
                subjects.EVENTS_STREAM, subjects.HISTORY_CONSUMER
            )
            last = (await nc.jetstream().stream_info(subjects.EVENTS_STREAM)).state.last_seq
            assert info.ack_floor.stream_seq < last  # nothing acknowledged while the store is down
            ferret = await start_ferretdb(port, tmp_path / "ferret")
            try:
                await history_caught_up(nats_server.url)
            except AssertionError:
                print(b"".join(history.lines[-60:]).decode(errors="replace"))
                raise
        await _with_store(MongoStore(uri), lambda s: assert_recorded_once(s, before + during))
    finally:
        await ferret.stop()
        await nc.close()
