"""`/v1` streams as Dify streams: runs outlive them, re-attach, Dify's ids and fields."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import Stack
from tests.e2e.dify_support import app, read_until_node_started
from tests.rfc4122 import is_rfc4122_uuid
from tests.support import GREET, delay_then_template, grade, sse_frames


async def _events(
    stack: Stack, key: str, url: str, params: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    async with (
        stack.client(key=key) as client,
        client.stream("GET", url, params=params) as response,
    ):
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        return [frame.json() async for frame in sse_frames(response)]


async def test_a_dropped_stream_leaves_the_run_going_and_reattach_follows_it(
    stack: Stack,
) -> None:
    _, key = await app(stack, "alice", delay_then_template(0.5))
    body = {"inputs": {}, "response_mode": "streaming", "user": "eu-drop"}
    async with (
        stack.client(key=key) as client,
        client.stream("POST", "/v1/workflows/run", json=body) as response,
    ):
        started = await read_until_node_started(response, "wait")
    # The connection is closed mid-DELAY. In Dify the run goes on; so it does here.
    run_id = started["workflow_run_id"]
    events = await _events(stack, key, f"/v1/workflow/{run_id}/events", {"user": "eu-drop"})
    assert events[0]["event"] == "workflow_started"  # the whole run, from its first event
    assert events[-1]["event"] == "workflow_finished"
    assert events[-1]["data"]["status"] == "succeeded"
    assert events[-1]["data"]["outputs"] == {"message": "done"}
    assert "after" in {e["data"]["node_id"] for e in events if e["event"] == "node_started"}


async def test_reattach_to_a_finished_run_sends_only_its_workflow_finished(stack: Stack) -> None:
    _, key = await app(stack, "alice", GREET)
    async with stack.client(key=key) as client:
        ran = await client.post(
            "/v1/workflows/run", json={"inputs": {"name": "Fin"}, "user": "eu-fin"}
        )
    run_id = ran.json()["workflow_run_id"]
    url = f"/v1/workflow/{run_id}/events"
    events = await _events(stack, key, url, {"user": "eu-fin"})
    assert [e["event"] for e in events] == ["workflow_finished"]
    assert events[0]["workflow_run_id"] == run_id
    assert events[0]["data"]["status"] == "succeeded"
    assert events[0]["data"]["outputs"] == {"answer": "Hello Fin!"}
    # Dify's query flags are accepted.
    flagged = await _events(
        stack,
        key,
        url,
        {"user": "eu-fin", "include_state_snapshot": "true", "continue_on_pause": "true"},
    )
    assert [e["event"] for e in flagged] == ["workflow_finished"]


async def test_reattach_is_for_the_runs_end_user_only_and_reveals_nothing(stack: Stack) -> None:
    _, key = await app(stack, "alice", GREET)
    _, other_app_key = await app(stack, "alice", GREET)
    _, mallory_key = await app(stack, "mallory", GREET)
    async with stack.client(key=key) as client:
        ran = await client.post("/v1/workflows/run", json={"inputs": {"name": "S"}, "user": "eu-1"})
        run_id = ran.json()["workflow_run_id"]
        url = f"/v1/workflow/{run_id}/events"
        no_user = await client.get(url)
        assert no_user.status_code == 400 and no_user.json()["code"] == "invalid_param"
        assert "user" in no_user.json()["message"]
        another_end_user = await client.get(url, params={"user": "eu-2"})
    async with stack.client(key=other_app_key) as client:
        another_app = await client.get(url, params={"user": "eu-1"})
    async with stack.client(key=mallory_key) as client:
        another_owner = await client.get(url, params={"user": "eu-1"})
    unknown_id = "8f0c7a58-5c1e-4d3b-9a53-4a0f5f1f2b6e"
    async with stack.client(key=key) as client:
        unknown = await client.get(f"/v1/workflow/{unknown_id}/events", params={"user": "eu-1"})
    # Nothing tells a run of someone else from a run that does not exist.
    assert unknown.json() == {
        "code": "not_found",
        "message": f"workflow run {unknown_id} not found",
        "status": 404,
    }
    for refusal in (another_end_user, another_app, another_owner):
        assert refusal.status_code == 404
        assert refusal.json() == {
            "code": "not_found",
            "message": f"workflow run {run_id} not found",
            "status": 404,
        }


async def test_reattach_ends_at_a_pause_unless_continue_on_pause(stack: Stack) -> None:
    _, key = await app(stack, "alice", delay_then_template(0.5))
    body = {"inputs": {}, "response_mode": "streaming", "user": "eu-p"}
    async with (
        stack.client(key=key) as client,
        client.stream("POST", "/v1/workflows/run", json=body) as response,
    ):
        run_id = (await read_until_node_started(response, "wait"))["workflow_run_id"]
    async with stack.client("alice") as owner:
        assert (await owner.post(f"/api/executions/{run_id}/pause")).status_code == 202
    url = f"/v1/workflow/{run_id}/events"
    # Dify's default: the stream ends at the pause (the run's latest event).
    until_pause = await _events(stack, key, url, {"user": "eu-p"})
    assert until_pause[-1]["event"] == "workflow_paused"

    params = {"user": "eu-p", "continue_on_pause": "true"}
    async with (
        stack.client(key=key) as client,
        client.stream("GET", url, params=params) as response,
    ):
        frames = sse_frames(response)
        async for frame in frames:
            if frame.json()["event"] == "workflow_paused":
                break
        async with stack.client("alice") as owner:
            assert (await owner.post(f"/api/executions/{run_id}/resume")).status_code == 202
        rest = [frame.json() async for frame in frames]
    assert rest[0]["event"] == "workflow_resumed"
    assert rest[-1]["event"] == "workflow_finished" and rest[-1]["data"]["status"] == "succeeded"
    # The stream passed a pause the run had resumed from: ends at the run's end only.
    replay = await _events(stack, key, url, {"user": "eu-p"})
    assert [e["event"] for e in replay] == ["workflow_finished"]


async def test_node_types_are_difys_ids_on_v1_and_flowstreams_on_api(stack: Stack) -> None:
    workflow_id, key = await app(stack, "alice", grade())
    inputs = {"score": 70, "verified": True}
    async with stack.client(key=key) as client:
        body = {"inputs": inputs, "response_mode": "streaming", "user": "eu-t"}
        async with client.stream("POST", "/v1/workflows/run", json=body) as response:
            dify = [frame.json() async for frame in sse_frames(response)]
    async with (
        stack.client("alice") as client,
        client.stream(
            "POST", f"/api/workflow/{workflow_id}/execute", json={"inputs": inputs}
        ) as response,
    ):
        api = [frame.json() for frame in [f async for f in sse_frames(response)][:-1]]

    def types(events: list[dict[str, Any]], name: str) -> list[str]:
        return [e["data"]["node_type"] for e in events if e["event"] == name]

    for name in ("node_started", "node_finished"):
        assert types(dify, name) == ["start", "if-else", "template-transform", "end"]
        assert types(api, name) == ["START", "CONDITION", "TEMPLATE", "END"]

    _, delay_key = await app(stack, "alice", delay_then_template(0))
    async with stack.client(key=delay_key) as client:
        body = {"inputs": {}, "response_mode": "streaming", "user": "eu-t"}
        async with client.stream("POST", "/v1/workflows/run", json=body) as response:
            delayed = [frame.json() async for frame in sse_frames(response)]
    assert types(delayed, "node_started") == ["start", "delay", "template-transform", "end"]


async def test_task_and_run_ids_are_rfc4122_uuids(stack: Stack) -> None:
    _, key = await app(stack, "alice", GREET)
    async with stack.client(key=key) as client:
        blocking = (
            await client.post("/v1/workflows/run", json={"inputs": {"name": "U"}, "user": "u"})
        ).json()
        body = {"inputs": {"name": "U"}, "response_mode": "streaming", "user": "u"}
        async with client.stream("POST", "/v1/workflows/run", json=body) as response:
            streamed = [frame.json() async for frame in sse_frames(response)]
    ids = [blocking["task_id"], blocking["workflow_run_id"]]
    ids += [e[key] for e in streamed for key in ("task_id", "workflow_run_id")]
    assert all(is_rfc4122_uuid(i) for i in ids), ids
    assert blocking["task_id"] != blocking["workflow_run_id"]


async def test_events_carry_difys_additive_fields(stack: Stack) -> None:
    _, key = await app(stack, "alice", GREET)
    body = {"inputs": {"name": "F"}, "response_mode": "streaming", "user": "eu-f"}
    async with (
        stack.client(key=key) as client,
        client.stream("POST", "/v1/workflows/run", json=body) as response,
    ):
        events = [frame.json() async for frame in sse_frames(response)]
    started = [e["data"] for e in events if e["event"] == "node_started"]
    finished = [e["data"] for e in events if e["event"] == "node_finished"]
    assert started and all(d["inputs_truncated"] is False for d in started)
    for data in finished:
        assert data["inputs_truncated"] is False and data["outputs_truncated"] is False
        assert data["process_data"] is None and data["files"] == []
    final = events[-1]["data"]
    assert final["exceptions_count"] == 0 and final["files"] == []
    assert final["created_by"] == {"id": "eu-f", "user": "eu-f"}
