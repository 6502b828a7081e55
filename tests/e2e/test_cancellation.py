"""Disconnect, stop by task id and the deadline: every run still ends with one workflow_finished."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.conftest import Stack
from tests.support import delay_then_template, read_run_log, sse_frames


async def _read_until_delay_started(response: httpx.Response) -> str:
    """Read the stream until the DELAY node has started; return the run id."""
    async for frame in sse_frames(response):
        event = frame.json()
        if event["event"] == "node_started" and event["data"]["node_id"] == "wait":
            run_id: str = event["workflow_run_id"]
            return run_id
    raise AssertionError("the stream ended before the DELAY started")


def _summary(events: list[dict[str, Any]]) -> tuple[set[str], list[dict[str, Any]]]:
    started = {e["data"]["node_id"] for e in events if e["event"] == "node_started"}
    finished = [e["data"] for e in events if e["event"] == "workflow_finished"]
    return started, finished


async def test_client_disconnect_stops_the_run_at_the_delay(stack: Stack) -> None:
    workflow_id = await stack.create_workflow("alice", delay_then_template(60))
    async with (
        stack.client("alice") as client,
        client.stream(
            "POST", f"/api/workflow/{workflow_id}/execute", json={"inputs": {}}
        ) as response,
    ):
        run_id = await _read_until_delay_started(response)
    # The connection is closed: the gateway cancels, the engine interrupts the DELAY at once.
    events = await read_run_log(stack.nats_url, run_id)
    started, finished = _summary(events)
    assert "after" not in started
    assert len(finished) == 1 and finished[0]["status"] == "stopped"
    wait = next(
        e["data"] for e in events
        if e["event"] == "node_finished" and e["data"]["node_id"] == "wait"
    )  # fmt: skip
    assert wait["status"] == "stopped"
    assert wait["elapsed_time"] < 60


async def test_on_disconnect_continue_lets_the_run_finish(stack: Stack) -> None:
    workflow_id = await stack.create_workflow("alice", delay_then_template(0.5))
    body = {"inputs": {}, "on_disconnect": "continue"}
    async with (
        stack.client("alice") as client,
        client.stream("POST", f"/api/workflow/{workflow_id}/execute", json=body) as response,
    ):
        run_id = await _read_until_delay_started(response)
    events = await read_run_log(stack.nats_url, run_id)
    started, finished = _summary(events)
    assert "after" in started
    assert [f["status"] for f in finished] == ["succeeded"]


async def test_stop_by_task_id_ends_the_stream_stopped(stack: Stack) -> None:
    workflow_id = await stack.create_workflow("alice", delay_then_template(60))
    async with stack.client("alice") as client:
        key = (await client.post("/api/keys", json={"workflow_id": workflow_id})).json()["key"]
    body = {"inputs": {}, "response_mode": "streaming", "user": "end-user-1"}
    async with (
        stack.client(key=key) as client,
        client.stream("POST", "/v1/workflows/run", json=body) as response,
    ):
        frames = sse_frames(response)
        task_id = ""
        async for frame in frames:
            event = frame.json()
            task_id = event["task_id"]
            if event["event"] == "node_started" and event["data"]["node_id"] == "wait":
                break
        stopped = await client.post(
            f"/v1/workflows/tasks/{task_id}/stop", json={"user": "end-user-1"}
        )
        assert stopped.status_code == 200 and stopped.json() == {"result": "success"}
        rest = [frame async for frame in frames]
    events = [f.json() for f in rest]
    assert events[-1]["event"] == "workflow_finished"
    assert events[-1]["data"]["status"] == "stopped"
    assert events[-1]["data"]["error"] == "Stopped by user."
    assert all(e["data"].get("node_id") != "after" for e in events)


async def test_stop_of_another_users_task_changes_nothing(stack: Stack) -> None:
    workflow_id = await stack.create_workflow("alice", delay_then_template(0.2))
    async with stack.client("alice") as client:
        run = await client.post(
            f"/api/workflow/{workflow_id}/execute",
            json={"inputs": {}, "response_mode": "blocking"},
        )
    task_id = run.json()["task_id"]
    async with stack.client("mallory") as client:
        # Dify's answer whatever the task: nothing tells mallory that alice's run exists.
        response = await client.post(f"/v1/workflows/tasks/{task_id}/stop", json={"user": "m"})
        assert response.status_code == 200 and response.json() == {"result": "success"}
        garbage = await client.post("/v1/workflows/tasks/not-a-task/stop", json={"user": "m"})
        assert garbage.json() == {"result": "success"}
    assert run.json()["data"]["status"] == "succeeded"


async def test_the_run_deadline_fails_the_run_and_ends_the_stream(stack: Stack) -> None:
    workflow_id = await stack.create_workflow("alice", delay_then_template(60, timeout=1))
    async with (
        stack.client("alice") as client,
        client.stream(
            "POST", f"/api/workflow/{workflow_id}/execute", json={"inputs": {}}
        ) as response,
    ):
        frames = [frame async for frame in sse_frames(response)]
    assert frames[-1].data == "[DONE]"
    events = [f.json() for f in frames[:-1]]
    started, finished = _summary(events)
    assert "after" not in started
    assert len(finished) == 1 and finished[0]["status"] == "failed"
    assert "timed out" in finished[0]["error"]


async def test_a_requests_config_timeout_replaces_the_workflows_deadline(stack: Stack) -> None:
    # The workflow allows an hour; the request (seed 003's execute body) allows one second.
    workflow_id = await stack.create_workflow("alice", delay_then_template(60, timeout=3600))
    body = {"input_data": {}, "config": {"async": False, "timeout": 1}}
    async with stack.client("alice") as client:
        answer = await client.post(f"/api/workflows/{workflow_id}/execute", json=body)
    assert answer.status_code == 200, answer.text
    run = answer.json()["data"]
    assert run["status"] == "failed" and run["error"] == "workflow timed out after 1s", run
