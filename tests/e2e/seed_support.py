"""Helpers for the end-to-end tests of the seed forms: wait on a run's events over the API."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.support import sse_frames


async def until_event(
    client: httpx.AsyncClient, run_id: str, event: str, count: int = 1
) -> list[dict[str, Any]]:
    """The run's events up to its `count`-th `event`, read by attaching to its stream (which
    replays from the first event and never cancels the run when left)."""
    seen: list[dict[str, Any]] = []
    matched = 0
    async with client.stream("GET", f"/api/executions/{run_id}/events") as response:
        assert response.status_code == 200, await response.aread()
        async for frame in sse_frames(response):
            if frame.data == "[DONE]":
                break
            payload: dict[str, Any] = json.loads(frame.data)
            seen.append(payload)
            if payload["event"] == event:
                matched += 1
                if matched == count:
                    return seen
    raise AssertionError(f"run {run_id} ended after {matched} `{event}`: {seen[-1:]}")
