"""What the Dify-compatibility tests share: an app (a workflow and its API key), reading streams."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.conftest import Stack
from tests.support import sse_frames

# An origin the e2e stack allows (FLOWSTREAM_CORS_ORIGINS in tests/e2e/conftest.py).
ALLOWED_ORIGIN = "http://app.test"


async def app(stack: Stack, owner: str, definition: dict[str, Any]) -> tuple[str, str]:
    """A workflow of `owner` and an app key bound to it: (workflow id, key)."""
    workflow_id = await stack.create_workflow(owner, definition)
    async with stack.client(owner) as client:
        response = await client.post("/api/keys", json={"workflow_id": workflow_id})
        assert response.status_code == 201, response.text
        key: str = response.json()["key"]
    return workflow_id, key


async def read_until_node_started(response: httpx.Response, node_id: str) -> dict[str, Any]:
    """Read a Dify stream until `node_id` starts; return that event."""
    async for frame in sse_frames(response):
        event = frame.json()
        if event["event"] == "node_started" and event["data"]["node_id"] == node_id:
            return event
    raise AssertionError(f"the stream ended before {node_id} started")
