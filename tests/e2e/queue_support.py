"""Helpers of the queue tests: more gateway and engine processes, and an owner's event feed."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from flowstream_launcher.nats_server import free_port
from websockets.asyncio.client import ClientConnection, connect

from tests.e2e.conftest import Stack

WAIT_S = 60.0


async def _wait_for_line(process: asyncio.subprocess.Process, marker: bytes, what: str) -> None:
    assert process.stderr is not None
    async for line in process.stderr:
        if marker in line:
            return
    raise RuntimeError(f"the {what} exited before it was ready")


async def _drain(process: asyncio.subprocess.Process) -> None:
    assert process.stderr is not None
    async for _ in process.stderr:
        pass


@asynccontextmanager
async def extra_process(
    stack: Stack, module: str, env: dict[str, str], ready: bytes
) -> AsyncIterator[int]:
    port = free_port()
    port_name = "GATEWAY" if "gateway" in module else "ENGINE"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        env={
            **os.environ,
            "FLOWSTREAM_NATS_URL": stack.nats_url,
            f"FLOWSTREAM_{port_name}_PORT": str(port),
            **env,
        },
        stderr=asyncio.subprocess.PIPE,
    )
    drain: asyncio.Task[None] | None = None
    try:
        await asyncio.wait_for(_wait_for_line(process, ready, module), timeout=60)
        drain = asyncio.create_task(_drain(process))  # a full pipe would block the process
        yield port
    finally:
        process.terminate()
        await process.wait()
        if drain is not None:
            drain.cancel()


@asynccontextmanager
async def second_gateway(stack: Stack) -> AsyncIterator[str]:
    env = {
        "FLOWSTREAM_JWT_SECRET": stack.secret,
        "FLOWSTREAM_CREDENTIALS_PUBLIC_KEY": stack.process.credentials_public_key,
    }
    async with extra_process(stack, "flowstream_gateway", env, b"gateway ready on port") as port:
        base = f"http://127.0.0.1:{port}"
        # The lifespan logs readiness just before uvicorn binds: the client retries a refusal.
        async with httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(retries=5)) as client:
            assert (await client.get(f"{base}/healthz")).status_code == 200
        yield base


@asynccontextmanager
async def second_engine(stack: Stack, concurrency: int) -> AsyncIterator[int]:
    env = {
        "FLOWSTREAM_CREDENTIALS_PRIVATE_KEY": stack.process.credentials_private_key,
        "FLOWSTREAM_ENGINE_CONCURRENCY": str(concurrency),
    }
    async with extra_process(stack, "flowstream_engine", env, b"engine ready") as port:
        yield port


def ws_url(base_url: str, path: str) -> str:
    return base_url.replace("http://", "ws://") + path


class OwnerFeed:
    """Every event of one user's runs, in the order the event log stored them (`/ws`)."""

    def __init__(self, socket: ClientConnection) -> None:
        self._socket = socket
        self.events: list[dict[str, Any]] = []
        self._arrived = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self._socket:
            async with self._arrived:
                self.events.append(json.loads(message))
                self._arrived.notify_all()

    async def until(self, done: Callable[[list[dict[str, Any]]], bool]) -> None:
        """Wait until `done(events)` holds (a minute at most)."""
        async with asyncio.timeout(WAIT_S), self._arrived:
            await self._arrived.wait_for(lambda: done(self.events))

    def of(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == event]

    def started_order(self, run_ids: list[str]) -> list[str]:
        wanted = set(run_ids)
        return [
            e["workflow_run_id"]
            for e in self.of("workflow_started")
            if e["workflow_run_id"] in wanted
        ]

    def finished(self, run_ids: list[str]) -> bool:
        done = {e["workflow_run_id"] for e in self.of("workflow_finished")}
        return set(run_ids) <= done

    def most_running_at_once(self, run_ids: list[str]) -> int:
        wanted, running, most = set(run_ids), 0, 0
        for event in self.events:
            if event["workflow_run_id"] not in wanted:
                continue
            if event["event"] == "workflow_started":
                running += 1
                most = max(most, running)
            elif event["event"] == "workflow_finished":
                running -= 1
        return most


@asynccontextmanager
async def owner_feed(stack: Stack, user: str) -> AsyncIterator[OwnerFeed]:
    async with connect(ws_url(stack.base_url, f"/ws?token={stack.token(user)}")) as socket:
        await socket.ping()  # the server has read the token and registered the feed
        feed = OwnerFeed(socket)
        try:
            yield feed
        finally:
            feed._reader.cancel()


def delay_workflow(seconds: float, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """START → DELAY → END, with the given workflow config."""
    return {
        "name": f"delay-{uuid.uuid4().hex[:6]}",
        "config": config or {},
        "nodes": [
            {
                "id": "start",
                "type": "START",
                "config": {"inputs": [{"name": "n", "type": "number", "default": 0}]},
            },
            {"id": "wait", "type": "DELAY", "config": {"seconds": seconds}},
            {"id": "end", "type": "END", "config": {"outputs": {"n": "{{input.n}}"}}},
        ],
        "connections": [{"from": "start", "to": "wait"}, {"from": "wait", "to": "end"}],
    }


async def start_run(client: httpx.AsyncClient, workflow_id: str, **body: Any) -> dict[str, Any]:
    response = await client.post("/api/executions", json={"workflow_id": workflow_id, **body})
    assert response.status_code == 202, response.text
    answer: dict[str, Any] = response.json()
    return answer
