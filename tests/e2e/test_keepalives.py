"""Idle streams carry keep-alives: comments on `/api`, Dify's `event: ping` frames on `/v1`."""

from __future__ import annotations

from tests.e2e.conftest import Stack
from tests.support import delay_then_template


async def test_api_streams_send_keepalive_comments_while_a_run_waits(stack: Stack) -> None:
    workflow_id = await stack.create_workflow("alice", delay_then_template(2.5))
    async with (
        stack.client("alice") as client,
        client.stream(
            "POST", f"/api/workflow/{workflow_id}/execute", json={"inputs": {}}
        ) as response,
    ):
        raw = (await response.aread()).decode()
    assert "\n: ping\n\n" in raw
    assert raw.endswith("data: [DONE]\n\n")


async def test_dify_streams_send_event_ping_frames_while_a_run_waits(stack: Stack) -> None:
    workflow_id = await stack.create_workflow("alice", delay_then_template(2.5))
    async with stack.client("alice") as client:
        key = (await client.post("/api/keys", json={"workflow_id": workflow_id})).json()["key"]
    body = {"inputs": {}, "response_mode": "streaming", "user": "u"}
    async with (
        stack.client(key=key) as client,
        client.stream("POST", "/v1/workflows/run", json=body) as response,
    ):
        raw = (await response.aread()).decode()
    assert "\n\nevent: ping\n\n" in raw
    assert not any(line.startswith(": ") for line in raw.split("\n"))  # no comment keep-alives
    assert "[DONE]" not in raw
