"""The example hooks package installed next to a whole stack, as `pip install` would leave it,
and WebSocket heartbeats: both need settings of their own, so this module starts its own stack.

The package (examples/hooks) is installed as a real distribution: its module and a
`*.dist-info` with the entry points its pyproject.toml declares, on the services' PYTHONPATH.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tomllib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from flowstream_launcher.child_stack import child_stack
from websockets.asyncio.client import connect

from tests.e2e.conftest import ROOT, Stack
from tests.e2e.peers import Peer, http_peer
from tests.support import GREET, delay_then_template

EXAMPLE = ROOT / "examples" / "hooks"
HOOKS_KEY = f"hooks-{uuid.uuid4().hex[:8]}"


def install_example(target: Path) -> None:
    """What `pip install examples/hooks` leaves in site-packages, without the network."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    shutil.copy(EXAMPLE / "flowstream_example_hooks.py", target)
    dist = target / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    lines = [
        f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in points.items())
        for group, points in project["entry-points"].items()
    ]
    (dist / "entry_points.txt").write_text("\n".join(lines))


@pytest.fixture(scope="module")
async def peer() -> AsyncIterator[Peer]:
    async with http_peer() as serving:
        yield serving


@pytest.fixture(scope="module")
async def hooked(tmp_path_factory: pytest.TempPathFactory, peer: Peer) -> AsyncIterator[Stack]:
    site = tmp_path_factory.mktemp("site")
    install_example(site)
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    env = {
        "PYTHONPATH": path,
        "FLOWSTREAM_EXAMPLE_HOOKS_URL": f"{peer.url}/data/{HOOKS_KEY}",
        "FLOWSTREAM_WS_HEARTBEAT_S": "0.2",
    }
    async with child_stack(tmp_path_factory.mktemp("hooked"), cwd=ROOT, extra_env=env) as process:
        yield Stack(process)


async def test_the_example_hooks_see_every_run_and_node(hooked: Stack, peer: Peer) -> None:
    workflow_id = await hooked.create_workflow("hooks", GREET)
    async with hooked.client("hooks") as client:
        answer = await client.post(
            f"/api/workflow/{workflow_id}/execute",
            json={"inputs": {"name": "Hook"}, "response_mode": "blocking"},
        )
    run_id = answer.json()["workflow_run_id"]
    await peer.arrived.wait(f"data/{HOOKS_KEY}/after_execution")

    calls: list[tuple[str, dict[str, Any]]] = [
        (r.path.rsplit("/", 1)[-1], r.json()) for r in peer.received(f"/data/{HOOKS_KEY}")
    ]
    assert [hook for hook, _ in calls] == [
        "before_execution",
        "on_node_execution",
        "on_node_execution",
        "on_node_execution",
        "after_execution",
    ]
    assert all(body["run_id"] == run_id for _, body in calls)
    assert [body["node_id"] for hook, body in calls if hook == "on_node_execution"] == [
        "start",
        "greet",
        "end",
    ]
    assert calls[-1][1]["status"] == "succeeded"
    async with httpx.AsyncClient() as client:
        exposed = (
            await client.get(f"http://127.0.0.1:{hooked.process.ports['engine']}/metrics")
        ).text
    counted = next(
        float(line.rsplit(" ", 1)[1])
        for line in exposed.splitlines()
        if line.startswith('flowstream_engine_hook_calls_total{hook="after_execution"}')
    )
    assert counted >= 1
    assert 'flowstream_engine_hook_failures_total{hook="after_execution"' not in exposed


async def test_a_quiet_websocket_gets_heartbeats(hooked: Stack) -> None:
    workflow_id = await hooked.create_workflow("beats", delay_then_template(1.0))
    url = hooked.base_url.replace("http://", "ws://") + f"/ws?token={hooked.token('beats')}"
    kinds: list[str] = []
    async with connect(url) as socket:
        await socket.ping()  # the server has read the token: the socket follows the user's runs
        async with hooked.client("beats") as client:
            await client.post("/api/executions", json={"workflow_id": workflow_id, "inputs": {}})
        async with asyncio.timeout(30):
            async for raw in socket:
                message = json.loads(raw)
                if message["type"] == "heartbeat":
                    assert set(message) == {"type", "timestamp"}
                    kinds.append("heartbeat")
                else:
                    kinds.append(f"{message['type']}:{message['data'].get('node_id', '')}")
                if message.get("event") == "workflow_finished":
                    break
    # The DELAY kept the socket quiet for a second: heartbeats filled the silence.
    started = kinds.index("node_started:wait")
    finished = kinds.index("node_completed:wait")
    assert "heartbeat" in kinds[started:finished]
