"""A second gateway replica shares everything through NATS: definitions, runs and stops."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.e2e.conftest import Stack
from tests.e2e.gateways import gateway_process
from tests.support import GREET, delay_then_template, make_token, sse_frames


@pytest.fixture
async def second_gateway(stack: Stack) -> AsyncIterator[str]:
    async with gateway_process(stack) as gateway:
        yield gateway.base_url


async def test_a_workflow_created_on_one_replica_runs_on_another(
    stack: Stack, second_gateway: str
) -> None:
    # Created through the first replica after the second started: the second has not seen it
    # through its watcher yet, and must still find it.
    workflow_id = await stack.create_workflow("alice", GREET)
    headers = {"Authorization": f"Bearer {make_token(stack.secret, 'alice')}"}
    async with httpx.AsyncClient(base_url=second_gateway, headers=headers, timeout=30) as other:
        assert (await other.get(f"/api/workflows/{workflow_id}")).status_code == 200
        ran = await other.post(
            f"/api/workflow/{workflow_id}/execute",
            json={"inputs": {"name": "B"}, "response_mode": "blocking"},
        )
        assert ran.json()["data"]["outputs"] == {"answer": "Hello B!"}
        deleted = await other.delete(f"/api/workflows/{workflow_id}")
        assert deleted.status_code == 204
        assert (await other.get(f"/api/workflows/{workflow_id}")).status_code == 404


async def test_a_run_streaming_on_one_replica_is_stopped_through_another(
    stack: Stack, second_gateway: str
) -> None:
    workflow_id = await stack.create_workflow("alice", delay_then_template(60))
    async with stack.client("alice") as first:
        key = (await first.post("/api/keys", json={"workflow_id": workflow_id})).json()["key"]
    body = {"inputs": {}, "response_mode": "streaming", "user": "u"}
    async with (
        stack.client(key=key) as first,
        first.stream("POST", "/v1/workflows/run", json=body) as response,
    ):
        frames = sse_frames(response)
        async for frame in frames:
            event = frame.json()
            if event["event"] == "node_started" and event["data"]["node_id"] == "wait":
                break
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=second_gateway, headers=headers) as other:
            stopped = await other.post(
                f"/v1/workflows/tasks/{event['task_id']}/stop", json={"user": "u"}
            )
        assert stopped.json() == {"result": "success"}
        rest = [f.json() async for f in frames]
    assert rest[-1]["event"] == "workflow_finished"
    assert rest[-1]["data"]["status"] == "stopped"


async def test_a_run_started_on_one_replica_is_followed_on_another(
    stack: Stack, second_gateway: str
) -> None:
    workflow_id = await stack.create_workflow("alice", GREET)
    async with stack.client("alice") as first:
        run_id = (
            await first.post(
                "/api/executions", json={"workflow_id": workflow_id, "inputs": {"name": "R"}}
            )
        ).json()["id"]
    headers = {"Authorization": f"Bearer {make_token(stack.secret, 'alice')}"}
    async with (
        httpx.AsyncClient(base_url=second_gateway, headers=headers, timeout=30) as other,
        other.stream("GET", f"/api/executions/{run_id}/events") as response,
    ):
        frames = [f async for f in sse_frames(response)]
    assert frames[-1].data == "[DONE]"
    assert frames[-2].json()["data"]["outputs"] == {"answer": "Hello R!"}
