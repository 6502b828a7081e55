"""Submitting safely and stopping gracefully: the same Idempotency-Key is the same run, and a
gateway stopped for a rolling update sends its clients elsewhere without stopping their runs."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from typing import Any

import httpx

from tests.e2e.conftest import Stack
from tests.e2e.gateways import gateway_process
from tests.support import GREET, Frame, delay_then_template, read_run_log, sse_frames


async def frames_of(response: httpx.Response) -> list[Frame]:
    return [frame async for frame in sse_frames(response)]


async def test_the_same_idempotency_key_starts_one_run(stack: Stack) -> None:
    user = f"idem-{uuid.uuid4().hex[:6]}"
    workflow_id = await stack.create_workflow(user, GREET)
    key = {"Idempotency-Key": f"order-{uuid.uuid4().hex}"}
    body = {"workflow_id": workflow_id, "inputs": {"name": "Ada"}}
    async with stack.client(user) as client:
        first = await client.post("/api/executions", json=body, headers=key)
        again = await client.post("/api/executions", json=body, headers=key)
        other = await client.post(
            "/api/executions", json={**body, "inputs": {"name": "Bo"}}, headers=key
        )
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert other.status_code == 409 and other.json()["code"] == "conflict"
    events = await read_run_log(stack.nats_url, first.json()["id"])
    assert [e["event"] for e in events].count("workflow_started") == 1


async def test_a_retried_streaming_submission_streams_the_same_run(stack: Stack) -> None:
    user = f"idem-{uuid.uuid4().hex[:6]}"
    workflow_id = await stack.create_workflow(user, GREET)
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    path = f"/api/workflow/{workflow_id}/execute/stream"
    body = {"inputs": {"name": "Ada"}}
    async with stack.client(user) as client:
        async with client.stream("POST", path, json=body, headers=headers) as response:
            first = await frames_of(response)
        async with client.stream("POST", path, json=body, headers=headers) as response:
            again = await frames_of(response)
    runs = {frame.json()["workflow_run_id"] for frame in (*first, *again) if frame.data != "[DONE]"}
    assert len(runs) == 1
    assert [f.data for f in again] == [f.data for f in first]  # the whole run, from its start
    assert again[-1].data == "[DONE]"


async def test_a_stopping_gateway_sends_its_streams_elsewhere_and_runs_go_on(
    stack: Stack,
) -> None:
    user = f"roll-{uuid.uuid4().hex[:6]}"
    workflow_id = await stack.create_workflow(user, delay_then_template(2.0))
    headers = {"Authorization": f"Bearer {stack.token(user)}"}
    seen: list[Frame] = []
    async with gateway_process(stack) as gateway:
        async with (
            httpx.AsyncClient(base_url=gateway.base_url, headers=headers, timeout=30) as client,
            client.stream(
                "POST",
                f"/api/workflow/{workflow_id}/execute/stream",
                json={"inputs": {"name": "R"}},
            ) as response,
        ):
            async for frame in sse_frames(response):
                seen.append(frame)
                event = frame.json() if frame.data.startswith("{") else {}
                if event.get("event") == "node_started" and event["data"]["node_id"] == "wait":
                    gateway.process.send_signal(signal.SIGTERM)  # a rolling update
        await asyncio.wait_for(gateway.process.wait(), 15)

    resume = seen[-1]
    assert resume.event == "resume", [f.data for f in seen]
    data: dict[str, Any] = resume.json()["data"]
    assert "[DONE]" not in [f.data for f in seen]
    events = [f.json() for f in seen[:-1] if f.data.startswith("{")]
    assert data["last_event_id"] == seen[-2].id  # the cursor of the last event it sent

    # The client resumes on another replica from where it was: the run went on meanwhile.
    async with (
        stack.client(user) as client,
        client.stream(
            "GET", data["url"], headers={"Last-Event-ID": data["last_event_id"]}
        ) as response,
    ):
        rest = [json.loads(f.data) for f in await frames_of(response) if f.data != "[DONE]"]
    whole = events + rest
    assert [e["seq"] for e in whole] == list(range(1, len(whole) + 1))
    assert whole[-1]["event"] == "workflow_finished"
    assert whole[-1]["data"]["status"] == "succeeded"  # never stopped by the gateway going
