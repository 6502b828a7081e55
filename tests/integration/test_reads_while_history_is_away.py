"""Reads while history is away (restarting): a run is answered from the event log, and a list
waits for history to come back instead of answering 503 (a gateway in-process, real NATS)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from flowstream_gateway.app import create_app
from flowstream_gateway.services import Services
from flowstream_gateway.settings import GatewaySettings
from flowstream_launcher.nats_server import NatsServer
from flowstream_shared import subjects
from flowstream_shared.credentials import generate_private_key, public_key_of
from flowstream_shared.nats_access import Identity
from nats.aio.client import Client

from tests.history_support import run_events
from tests.integration.test_history_faults import history_process
from tests.integration.test_history_intake import publish_events
from tests.support import GREET, make_token

SECRET = secrets.token_urlsafe(48)


@pytest.fixture
async def gateway(nats_server: NatsServer) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    settings = GatewaySettings(
        nats_url=nats_server.address,
        nats_user=Identity.GATEWAY.value,
        nats_password=nats_server.auth.passwords[Identity.GATEWAY.value],
        jwt_secret=SECRET,
        credentials_public_key=public_key_of(generate_private_key()),
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://gateway", timeout=30
        ) as client:
            yield client, app.state.services


async def test_a_run_is_read_from_the_event_log_while_history_is_away(
    nats_server: NatsServer,
    nc: Client,
    gateway: tuple[httpx.AsyncClient, Services],
    tmp_path: Path,
) -> None:
    client, services = gateway
    owner, events = await run_events(GREET, {"name": "Away"}, user_id="away-user")
    index = await nc.jetstream().key_value(subjects.RUNS_BUCKET)
    await index.put(owner.run_id, owner.model_dump_json().encode())
    await publish_events(nc, owner, events)
    auth = {"Authorization": f"Bearer {make_token(SECRET, owner.user_id)}"}
    # What a list names as seen: the event stream's and the run index's latest sequences.
    seen = await services.reads.positions()
    assert seen["events_seq"] is not None and seen["events_seq"] >= len(events)
    assert seen["runs_seq"] is not None and seen["runs_seq"] >= 1

    record = await client.get(f"/api/executions/{owner.run_id}", headers=auth)
    timeline = await client.get(f"/api/executions/{owner.run_id}/history", headers=auth)

    assert record.status_code == 200, record.text
    assert record.json()["status"] == "succeeded" and record.json()["last_seq"] == len(events)
    assert timeline.status_code == 200, timeline.text
    assert [e["seq"] for e in timeline.json()] == list(range(1, len(events) + 1))

    # A list needs history: it waits for it to come back rather than answering 503.
    listed = asyncio.create_task(
        client.get("/api/executions", params={"status": "succeeded"}, headers=auth)
    )
    async with history_process(nats_server, {"FLOWSTREAM_DATA_DIR": str(tmp_path)}):
        answer = await listed
    assert answer.status_code == 200, answer.text
    assert [item["id"] for item in answer.json()["items"]] == [owner.run_id]
