"""The KV watchers that keep a process's view of a bucket current outlive a NATS restart.

A watcher is an ordered consumer; a server that restarts does not keep it, and nats-py notices
only ~20 s later, from missed heartbeats. Without making it again after the reconnect, for
that long history learns of no queued run (lists cannot be confirmed up to date), a gateway
serves workflows and API keys as they were before the restart (a key revoked through another
replica is still accepted there), and an engine sees no control flag. Each test allows 5 s.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import pytest
from flowstream_engine.app import create_app
from flowstream_engine.control import ControlRegistry
from flowstream_engine.settings import EngineSettings
from flowstream_gateway.kv_cache import KvCache
from flowstream_history.run_index import RunIndexWatcher
from flowstream_launcher.nats_server import (
    NatsServer,
    NatsServerError,
    free_port,
    start_nats_server,
)
from flowstream_shared import subjects
from flowstream_shared.commands import ControlAction, ControlCommand, RunOwner
from flowstream_shared.nats_access import Identity
from nats.aio.client import Client
from nats.js.kv import KeyValue

from tests.conftest import IN_CI


@dataclass
class Restartable:
    """A nats-server that can be killed and started again on the same port and store."""

    store: Path
    port: int
    server: NatsServer | None = None

    async def start(self) -> None:
        auth = self.server.auth if self.server is not None else None
        self.server = await start_nats_server(self.port, self.store, auth=auth)

    async def kill_and_restart(self) -> None:
        assert self.server is not None
        self.server.process.kill()
        await self.server.process.wait()
        await self.server.stop()
        await self.start()

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url


@pytest.fixture
async def nats_node(tmp_path: Path) -> AsyncIterator[Restartable]:
    node = Restartable(tmp_path / "nats", free_port())
    try:
        await node.start()
    except NatsServerError:
        if IN_CI:
            raise
        pytest.skip("nats-server is not available")
    yield node
    if node.server is not None:
        await node.server.stop()


async def _connect(url: str, reconnected: Callable[[], Awaitable[None]]) -> Client:
    return await nats.connect(
        url, max_reconnect_attempts=-1, reconnect_time_wait=0.2, reconnected_cb=reconnected
    )


class Signal:
    """Something that happened, as often as it happens: wait for the next one."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        self._event.set()

    async def next(self, within_s: float = 5.0) -> None:
        await asyncio.wait_for(self._event.wait(), within_s)
        self._event.clear()


@dataclass
class Registrations:
    revisions: list[int] = field(default_factory=list)
    arrived: Signal = field(default_factory=Signal)

    async def register(self, entry: RunOwner | None, revision: int) -> None:
        self.revisions.append(revision)
        self.arrived.fire()

    async def until_registered(self, revision: int) -> None:
        while revision not in self.revisions:
            await self.arrived.next()


def _owner(run_id: str) -> bytes:
    owner = {"user_id": "u", "workflow_id": "w", "run_id": run_id, "task_id": run_id,
             "created_at": 1.0}  # fmt: skip
    return json.dumps(owner).encode()


async def _bucket(nc: Client, name: str) -> KeyValue:
    return await nc.jetstream().create_key_value(bucket=name)


async def test_the_run_index_watcher_goes_on_after_nats_restarts(nats_node: Restartable) -> None:
    registrations = Registrations()
    watchers: list[RunIndexWatcher] = []
    resumed = Signal()

    async def reconnected() -> None:
        for watcher in watchers:
            await watcher.resume()
        resumed.fire()

    nc = await _connect(nats_node.url, reconnected)
    try:
        index = await _bucket(nc, "flowstream_runs")
        watcher = RunIndexWatcher(nc.jetstream(), registrations)  # type: ignore[arg-type]
        watchers.append(watcher)
        await watcher.start(0)
        first = await index.put("run-1", _owner("run-1"))
        await registrations.until_registered(first)

        await nats_node.kill_and_restart()
        await resumed.next()
        later = await index.put("run-2", _owner("run-2"))

        await registrations.until_registered(later)
        assert registrations.revisions.count(first) == 1  # resumed after it, not from the start
        await watcher.stop()
    finally:
        await nc.close()


async def test_a_gateways_copy_of_a_bucket_follows_changes_after_nats_restarts(
    nats_node: Restartable,
) -> None:
    caches: list[KvCache[Any]] = []
    rewatched, decoded = Signal(), Signal()

    async def reconnected() -> None:
        for cache in caches:
            await cache.rewatch()
        rewatched.fire()

    def decode(value: bytes) -> Any:
        decoded.fire()
        return json.loads(value)

    nc = await _connect(nats_node.url, reconnected)
    other = await nats.connect(nats_node.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    try:
        keys = await _bucket(nc, "keys")
        cache: KvCache[dict[str, Any]] = KvCache(keys, decode)
        caches.append(cache)
        await keys.put("kept", b'{"v": 1}')
        await keys.put("revoked", b'{"v": 1}')
        await cache.start()
        assert await cache.get("revoked") == {"v": 1}

        await nats_node.kill_and_restart()
        await rewatched.next()
        # Another replica revokes a key, then edits another: once the edit is in the copy, so
        # is the revocation before it.
        elsewhere = await other.jetstream().key_value("keys")
        await elsewhere.delete("revoked")
        await elsewhere.put("kept", b'{"v": 2}')
        while await cache.get("kept") != {"v": 2}:
            await decoded.next()
        assert "revoked" not in cache._items
        await cache.stop()
    finally:
        await other.close()
        await nc.close()


class ObservedControl(ControlRegistry):
    """The engine's run registry, telling the test each time a control message arrives."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = Signal()

    def receive(self, run_id: str, command: ControlCommand) -> None:
        super().receive(run_id, command)
        self.arrived.fire()

    async def until_cancelled(self, run_id: str) -> None:
        while not self.is_cancelled(run_id):
            await self.arrived.next()


async def test_an_engine_sees_control_flags_after_nats_restarts(
    nats_node: Restartable, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert nats_node.server is not None
    back = Signal()

    async def reconnected() -> None:
        back.fire()

    admin = await _connect(nats_node.url, reconnected)
    try:
        js = admin.jetstream()
        flags = await js.create_key_value(bucket=subjects.CONTROL_BUCKET)
        await js.create_key_value(bucket=subjects.SLOTS_BUCKET)
        for name, value in nats_node.server.auth.env_for(Identity.ENGINE).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("FLOWSTREAM_NATS_URL", nats_node.server.address)
        control = ObservedControl()
        # Only the broker: its subscribers, none of the engine's start-up (no run is taken).
        broker = create_app(EngineSettings(), control).broker
        assert broker is not None
        await broker.start()
        try:
            stop = ControlCommand(action=ControlAction.CANCEL, reason="stopped by the test")
            await flags.put("run-before", stop.model_dump_json().encode())
            await control.until_cancelled("run-before")

            await nats_node.kill_and_restart()
            await back.next()
            await flags.put("run-after", stop.model_dump_json().encode())
            await control.until_cancelled("run-after")
        finally:
            await broker.stop()
    finally:
        await admin.close()
