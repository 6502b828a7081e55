"""`make run` on a NATS of its own (`FLOWSTREAM_NATS_URL`) whose identities are known
(`FLOWSTREAM_NATS_IDENTITIES_FILE`, as `child_stack(nats=...)` sets it): each service connects as
its own identity, as on the embedded server, and the launcher starts no server of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from flowstream_launcher.child_stack import child_stack
from flowstream_launcher.nats_server import NatsServer, free_port, start_nats_server

from tests.e2e.conftest import ROOT, Stack
from tests.support import GREET

EMBEDDED_SERVER_LINE = "nats    | "  # the launcher relays its own server's log with this prefix


@pytest.fixture(scope="module")
async def external(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[NatsServer, Stack]]:
    root: Path = tmp_path_factory.mktemp("external-nats")
    server = await start_nats_server(free_port(), root / "nats")
    try:
        async with child_stack(root / "data", cwd=ROOT, nats=server) as process:
            yield server, Stack(process)
    finally:
        await server.stop()


async def test_each_service_connects_to_it_as_its_own_identity(
    external: tuple[NatsServer, Stack],
) -> None:
    server, stack = external
    assert stack.process.nats_address == server.address
    assert not any(line.startswith(EMBEDDED_SERVER_LINE) for line in stack.process.output)
    workflow_id = await stack.create_workflow("alice", GREET)
    async with stack.client("alice") as client:
        run = await client.post(
            f"/api/workflow/{workflow_id}/execute",
            json={"inputs": {"name": "Ext"}, "response_mode": "blocking"},
        )
    assert run.status_code == 200, run.text
    assert run.json()["data"]["outputs"] == {"answer": "Hello Ext!"}
    async with httpx.AsyncClient(trust_env=False, timeout=5) as monitor:
        connz = (await monitor.get(f"http://127.0.0.1:{server.monitor_port}/connz?auth=1")).json()
    users = {connection.get("authorized_user") for connection in connz["connections"]}
    assert {"gateway", "engine", "history"} <= users
