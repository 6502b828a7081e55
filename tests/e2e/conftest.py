"""Starts the stack as `make run` does (the launcher, as a process) and drives it over HTTP."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from flowstream_launcher.nats_server import free_port

from tests.support import make_token

READY_MARKER = "flowstream is ready"
CURL_LINE = re.compile(r"curl .*/execute")
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Stack:
    base_url: str
    nats_url: str
    secret: str
    banner: list[str] = field(default_factory=list)

    def token(self, user: str) -> str:
        return make_token(self.secret, user)

    def client(self, user: str | None = None, key: str | None = None) -> httpx.AsyncClient:
        headers: dict[str, str] = {}
        if user is not None:
            headers["Authorization"] = f"Bearer {self.token(user)}"
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=30)

    async def create_workflow(self, user: str, definition: dict[str, Any]) -> str:
        async with self.client(user) as client:
            response = await client.post("/api/workflows", json=definition)
            assert response.status_code == 201, response.text
            workflow_id: str = response.json()["id"]
            return workflow_id


@pytest.fixture(scope="session")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    data_dir = tmp_path_factory.mktemp("flowstream")
    ports = {name: free_port() for name in ("nats", "gateway", "engine", "history")}
    secret = secrets.token_urlsafe(48)
    env = {
        **os.environ,
        "FLOWSTREAM_DATA_DIR": str(data_dir),
        "FLOWSTREAM_NATS_PORT": str(ports["nats"]),
        "FLOWSTREAM_GATEWAY_PORT": str(ports["gateway"]),
        "FLOWSTREAM_ENGINE_PORT": str(ports["engine"]),
        "FLOWSTREAM_HISTORY_PORT": str(ports["history"]),
        "FLOWSTREAM_JWT_SECRET": secret,
        "FLOWSTREAM_EXAMPLES_DIR": str(ROOT / "examples"),
    }
    env.pop("FLOWSTREAM_NATS_URL", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flowstream_launcher",
        "run",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    output: list[str] = []
    ready = asyncio.get_running_loop().create_future()
    # The banner lines after the marker carry the token and the curl line.
    banner_done = asyncio.get_running_loop().create_future()

    async def relay() -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            output.append(line)
            if READY_MARKER in line and not ready.done():
                ready.set_result(len(output) - 1)
            if ready.done() and CURL_LINE.search(line) and not banner_done.done():
                banner_done.set_result(None)
        if not ready.done():
            ready.set_exception(RuntimeError("launcher exited:\n" + "\n".join(output[-40:])))

    relay_task = asyncio.create_task(relay())
    try:
        start = await asyncio.wait_for(ready, timeout=90)
        await asyncio.wait_for(banner_done, timeout=10)
        yield Stack(
            base_url=f"http://127.0.0.1:{ports['gateway']}",
            nats_url=f"nats://127.0.0.1:{ports['nats']}",
            secret=secret,
            banner=output[start:],
        )
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(process.wait(), timeout=30)
            except TimeoutError:
                process.kill()
                await process.wait()
        relay_task.cancel()
