"""Engines running in this process against the session's real nats-server."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import Any, Protocol

import nats
import pytest
from faststream.asgi import AsgiFastStream
from flowstream_engine.app import create_app
from flowstream_engine.settings import EngineSettings
from flowstream_launcher.nats_server import NatsServer
from flowstream_shared import subjects
from flowstream_shared.commands import RunCommand, WorkflowSnapshot
from flowstream_shared.nats_access import Identity
from flowstream_shared.settings import NatsSettings
from flowstream_shared.topology import ensure_topology
from flowstream_shared.workflow import WorkflowDefinition
from nats.aio.client import Client
from nats.js.errors import NotFoundError


class EngineFactory(Protocol):
    def __call__(self, concurrency: int = 16) -> Awaitable[AsgiFastStream]: ...


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[Client]:
    client = await nats.connect(nats_server.url)
    await ensure_topology(client.jetstream(), NatsSettings(nats_url=nats_server.url))
    yield client
    await client.close()


@pytest.fixture
async def start_engine(nats_server: NatsServer) -> AsyncIterator[EngineFactory]:
    """Start engines on demand; every one still running is stopped at the end of the test."""
    running: list[AsgiFastStream] = []

    async def start(concurrency: int = 16) -> AsgiFastStream:
        settings = EngineSettings(
            nats_url=nats_server.address,
            nats_user=Identity.ENGINE.value,
            nats_password=nats_server.auth.passwords[Identity.ENGINE.value],
            engine_ack_wait_s=5.0,
            engine_concurrency=concurrency,
            egress_allow=["127.0.0.0/8"],  # the tests' HTTP peers listen on loopback
        )
        app = create_app(settings)
        await app.start()
        running.append(app)
        return app

    yield start
    for app in running:
        await app.stop()
    if running:
        # Runs its engines handed back on stopping stay queued; the next test's engines would
        # pick them up and count them as their own work.
        client = await nats.connect(nats_server.url)
        with contextlib.suppress(NotFoundError):
            await client.jetstream().purge_stream(subjects.RUNS_STREAM)
        await client.close()


def command(definition: dict[str, Any], inputs: dict[str, Any], timeout: float = 30) -> RunCommand:
    now = time.time()
    run_id = str(uuid.uuid4())
    return RunCommand(
        run_id=run_id,
        task_id=str(uuid.uuid4()),
        workflow=WorkflowSnapshot(
            workflow_id=f"wf-{uuid.uuid4().hex[:8]}",
            version=1,
            definition=WorkflowDefinition.model_validate(definition),
        ),
        inputs=inputs,
        user_id="tester",
        created_at=now,
        deadline=now + timeout,
    )


async def submit(client: Client, cmd: RunCommand) -> int:
    """Queue the command as the gateway does; its stream sequence in the run queue."""
    ack = await client.jetstream().publish(
        cmd.subject,
        cmd.model_dump_json(by_alias=True).encode(),
        headers={"Nats-Msg-Id": cmd.run_id},
    )
    await client.publish(subjects.ready_subject(cmd.priority), b"")  # wakes an idle engine
    return ack.seq
