"""Streaming execution over real HTTP/SSE, with the engine in its own process behind real NATS."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
from pathlib import Path
from typing import Any

import httpx
import nats
from nats.aio.msg import Msg

from tests.e2e.conftest import Stack
from tests.support import GREET, Frame, grade, sse_frames

NODE_FINISHED_FIELDS = {
    "id", "node_id", "node_type", "title", "index", "inputs", "outputs", "status", "error",
    "elapsed_time", "execution_metadata", "created_at", "finished_at",
}  # fmt: skip
FINISHED_FIELDS = {
    "id", "workflow_id", "status", "outputs", "error", "elapsed_time", "total_tokens",
    "total_steps", "created_at", "finished_at",
}  # fmt: skip


async def stream(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> list[Frame]:
    async with client.stream("POST", url, json=body) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        return [frame async for frame in sse_frames(response)]


async def test_stream_emits_every_step_in_order_then_done(stack: Stack) -> None:
    workflow_id = await stack.create_workflow("alice", GREET)
    async with stack.client("alice") as client:
        frames = await stream(
            client, f"/api/workflow/{workflow_id}/execute", {"inputs": {"name": "Ada"}}
        )

    assert frames[-1].data == "[DONE]"
    events = [f.json() for f in frames[:-1]]
    names = [e["event"] for e in events if e["event"] != "workflow_progress"]
    assert names == [
        "workflow_started",
        "node_started", "node_finished",
        "node_started", "text_chunk", "text_chunk", "text_chunk", "node_finished",
        "node_started", "node_finished",
        "workflow_finished",
    ]  # fmt: skip
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    cursors = [int(f.id or 0) for f in frames[:-1]]
    assert cursors == sorted(cursors) and len(set(cursors)) == len(cursors)

    run_id = events[0]["workflow_run_id"]
    assert all(list(e)[:4] == ["event", "workflow_run_id", "task_id", "data"] for e in events)
    assert {e["workflow_run_id"] for e in events} == {run_id}
    started = events[0]["data"]
    assert started["workflow_id"] == workflow_id and started["workflow_version"] == 1
    assert started["inputs"]["name"] == "Ada" and started["inputs"]["sys.user_id"] == "alice"
    chunks = [e["data"] for e in events if e["event"] == "text_chunk"]
    assert "".join(c["text"] for c in chunks) == "Hello Ada!"
    assert all(c["from_variable_selector"] == ["greet", "text"] for c in chunks)
    for finished in (e["data"] for e in events if e["event"] == "node_finished"):
        assert set(finished) >= NODE_FINISHED_FIELDS and finished["status"] == "succeeded"
    final = events[-1]["data"]
    assert set(final) >= FINISHED_FIELDS
    assert final["status"] == "succeeded" and final["outputs"] == {"answer": "Hello Ada!"}
    assert final["total_steps"] == 3


async def test_raw_nats_subscriber_sees_what_the_sse_client_sees(stack: Stack) -> None:
    workflow_id = await stack.create_workflow("alice", GREET)
    nc = await nats.connect(stack.nats_url)
    received: list[dict[str, Any]] = []
    finished: dict[str, asyncio.Event] = {}

    async def collect(msg: Msg) -> None:
        event = json.loads(msg.data)
        received.append(event)
        if event["event"] == "workflow_finished":
            finished.setdefault(event["workflow_run_id"], asyncio.Event()).set()

    subscription = await nc.subscribe("flowstream.events.>", cb=collect)
    try:
        async with stack.client("alice") as client:
            frames = await stream(
                client, f"/api/workflow/{workflow_id}/execute", {"inputs": {"name": "Bo"}}
            )
        sse_events = [f.json() for f in frames[:-1]]
        run_id = sse_events[0]["workflow_run_id"]
        await asyncio.wait_for(finished.setdefault(run_id, asyncio.Event()).wait(), timeout=10)
        from_nats = [e for e in received if e["workflow_run_id"] == run_id]
        assert from_nats == sse_events
    finally:
        await subscription.unsubscribe()
        await nc.close()


async def test_blocking_mode_answers_the_finished_run_as_json(stack: Stack) -> None:
    workflow_id = await stack.create_workflow("alice", GREET)
    async with stack.client("alice") as client:
        response = await client.post(
            f"/api/workflow/{workflow_id}/execute",
            json={"inputs": {"name": "Cy"}, "response_mode": "blocking"},
        )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"task_id", "workflow_run_id", "data"}
    assert body["task_id"] != body["workflow_run_id"]
    assert body["data"]["id"] == body["workflow_run_id"]
    assert body["data"]["status"] == "succeeded"
    assert body["data"]["outputs"] == {"answer": "Hello Cy!"}
    assert set(body["data"]) == FINISHED_FIELDS


async def test_execute_stream_route_always_streams(stack: Stack) -> None:
    workflow_id = await stack.create_workflow("alice", GREET)
    async with stack.client("alice") as client:
        frames = await stream(
            client,
            f"/api/workflow/{workflow_id}/execute/stream",
            {"inputs": {"name": "Di"}, "response_mode": "blocking"},
        )
    assert frames[-1].data == "[DONE]"
    assert frames[-2].json()["event"] == "workflow_finished"


async def test_both_branches_of_a_condition(stack: Stack) -> None:
    workflow_id = await stack.create_workflow("alice", grade())
    cases = [
        ({"score": 70, "verified": True}, "pass_msg", "fail_msg", "Passed with 70"),
        ({"score": 70}, "fail_msg", "pass_msg", "Not passed"),
        ({"score": 40, "verified": True}, "fail_msg", "pass_msg", "Not passed"),
    ]
    async with stack.client("alice") as client:
        for inputs, taken, untaken, result in cases:
            frames = await stream(
                client, f"/api/workflow/{workflow_id}/execute", {"inputs": inputs}
            )
            events = [f.json() for f in frames[:-1]]
            started = {e["data"]["node_id"] for e in events if e["event"] == "node_started"}
            assert taken in started and untaken not in started, inputs
            condition = next(
                e["data"] for e in events
                if e["event"] == "node_finished" and e["data"]["node_id"] == "check"
            )  # fmt: skip
            assert condition["outputs"] == {"result": taken == "pass_msg"}
            assert events[-1]["data"]["outputs"] == {"result": result}


async def test_an_input_that_tries_to_be_code_stays_data(stack: Stack, tmp_path: Path) -> None:
    workflow_id = await stack.create_workflow("alice", GREET)
    marker = tmp_path / "pwned"
    hostile = [
        f"__import__('os').system('touch {marker}')",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{% for x in range(10**9) %}x{% endfor %}",
    ]
    async with stack.client("alice") as client:
        for name in hostile:
            response = await client.post(
                f"/api/workflow/{workflow_id}/execute",
                json={"inputs": {"name": name}, "response_mode": "blocking"},
            )
            data = response.json()["data"]
            assert data["status"] == "succeeded"
            assert data["outputs"] == {"answer": f"Hello {name}!"}
    assert not marker.exists()


async def test_the_printed_curl_line_works(stack: Stack) -> None:
    """The banner's curl line, as a newcomer pastes it, streams a run to `[DONE]`."""
    line = next(line for line in stack.banner if "curl " in line)
    args = shlex.split(line[line.index("curl ") :])
    url = next(a for a in args if a.startswith("http"))
    headers = dict(args[i + 1].split(": ", 1) for i, a in enumerate(args) if a == "-H")
    body = json.loads(args[args.index("-d") + 1])
    assert re.search(r"/api/workflow/[^/]+/execute$", url)
    async with httpx.AsyncClient(headers=headers, timeout=30) as client:
        frames = await asyncio.wait_for(stream(client, url, body), timeout=30)
    assert frames[-1].data == "[DONE]"
    assert frames[-2].json()["data"]["outputs"] == {"answer": "Hello Ada!"}
