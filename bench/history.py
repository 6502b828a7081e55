"""History projection rate: events recorded per second, from a backlog, for each store.

The event log is filled first (real runs, published as an engine publishes them); then a history
process starts and the clock runs from its ready line until its consumer has acknowledged the
whole backlog. Each store gets a fresh NATS server, so each starts from the same backlog.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nats
from flowstream_launcher.nats_server import free_port, start_nats_server
from flowstream_shared.settings import NatsSettings
from flowstream_shared.topology import ensure_topology

from tests.integration.test_history_faults import history_process, make_runs, publish
from tests.mongo.server import ensure_ferretdb_binary, start_ferretdb
from tests.support import history_caught_up


@dataclass(frozen=True)
class ProjectionRate:
    store: str
    events: int
    seconds: float

    @property
    def events_per_s(self) -> float:
        return round(self.events / self.seconds, 1)


async def _measure(store: str, runs_count: int, env: dict[str, str]) -> ProjectionRate:
    with tempfile.TemporaryDirectory(prefix="flowstream-bench-history-") as tmp:
        server = await start_nats_server(free_port(), Path(tmp) / "nats")
        try:
            nc = await nats.connect(server.url)
            await ensure_topology(nc.jetstream(), NatsSettings(nats_url=server.address))
            runs = await make_runs(runs_count)
            await publish(nc, runs)
            events = sum(len(e) for _, e in runs)
            await nc.close()
            env = {"FLOWSTREAM_DATA_DIR": str(Path(tmp) / "data"), **env}
            async with history_process(server, env):  # yields once history says it is ready
                started = time.perf_counter()
                await history_caught_up(server.url, within_s=600)
                seconds = time.perf_counter() - started
        finally:
            await server.stop()
    return ProjectionRate(store, events, round(seconds, 3))


async def projection_rates(runs_count: int = 300) -> list[ProjectionRate]:
    rates = [await _measure("sqlite", runs_count, {})]
    await ensure_ferretdb_binary()
    with tempfile.TemporaryDirectory(prefix="flowstream-bench-ferret-") as tmp:
        port = free_port()
        ferret = await start_ferretdb(port, Path(tmp))
        try:
            uri = f"mongodb://127.0.0.1:{port}/bench"
            rates.append(
                await _measure(
                    "mongodb (FerretDB 1.24, SQLite backend)",
                    runs_count,
                    {"FLOWSTREAM_MONGODB_URI": uri},
                )
            )
        finally:
            await ferret.stop()
    return rates
