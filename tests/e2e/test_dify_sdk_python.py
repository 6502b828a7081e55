"""Dify's Python SDK (PyPI `dify-client`, pinned in the dev group) against the whole stack.

The published SDK has the generic calls (`get_application_parameters`, its request transport);
the workflow calls Dify's documentation shows (run, stop, run detail, logs, info, re-attach) are
made through that same transport, as an app built on this SDK makes them. Each scenario is the
SDK's own blocking code, run in a worker thread so the test's event loop stays free.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

from dify_client import DifyClient

from tests.e2e.conftest import Stack
from tests.e2e.dify_support import app
from tests.rfc4122 import is_rfc4122_uuid
from tests.support import delay_then_template, grade, history_caught_up


class WorkflowApp:
    """A workflow app as a Python Dify user reaches it: the SDK client, pointed at flowstream."""

    def __init__(self, base_url: str, key: str) -> None:
        self.sdk = DifyClient(key)
        self.sdk.base_url = f"{base_url}/v1"

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        stream: bool = False,
    ) -> Any:
        return self.sdk._send_request(method, path, json=body, params=params, stream=stream)

    def run(self, inputs: dict[str, Any], user: str, mode: str = "blocking") -> Any:
        body = {"inputs": inputs, "response_mode": mode, "user": user}
        return self.request("POST", "/workflows/run", body, stream=mode == "streaming")


def events(response: Any) -> Iterator[dict[str, Any]]:
    """Dify's streaming format as its docs read it: `data: {json}` lines."""
    for line in response.iter_lines(decode_unicode=True):
        if line.startswith("data: "):
            event: dict[str, Any] = json.loads(line[len("data: ") :])
            yield event


def _blocking_detail_parameters_info(dify: WorkflowApp) -> str:
    params = dify.sdk.get_application_parameters("py-user")
    assert params.status_code == 200
    form = params.json()
    assert form["file_upload"]["image"]["enabled"] is False  # every key, even switched off
    assert form["system_parameters"]["file_size_limit"] == 0
    controls = {next(iter(f)): next(iter(f.values()))["variable"] for f in form["user_input_form"]}
    assert controls == {"number": "score", "checkbox": "verified"}

    ran = dify.run({"score": "72", "verified": "true"}, "py-user")  # form strings, as Dify takes
    assert ran.status_code == 200, ran.text
    body = ran.json()
    assert list(body) == ["task_id", "workflow_run_id", "data"]
    assert is_rfc4122_uuid(body["task_id"]) and is_rfc4122_uuid(body["workflow_run_id"])
    assert uuid.UUID(body["task_id"]).version == 4 and body["task_id"] != body["workflow_run_id"]
    data = body["data"]
    assert data["status"] == "succeeded" and data["outputs"] == {"result": "Passed with 72"}
    assert isinstance(data["elapsed_time"], float) and isinstance(data["finished_at"], int)

    detail = dify.request("GET", f"/workflows/run/{body['workflow_run_id']}").json()
    assert detail["status"] == "succeeded" and detail["outputs"] == data["outputs"]
    inputs = json.loads(detail["inputs"])  # a JSON string, as Dify's
    assert inputs["score"] == 72 and inputs["verified"] is True
    assert inputs["sys.user_id"] == "py-user"

    info = dify.request("GET", "/info").json()
    assert info["mode"] == "workflow" and info["author_name"] == "alice"
    assert dify.request("GET", "/meta").json() == {"tool_icons": {}}
    assert dify.request("GET", "/site").json()["title"] == info["name"]
    run_id: str = body["workflow_run_id"]
    return run_id


def _logs(dify: WorkflowApp, run_id: str) -> None:
    logs = dify.request("GET", "/workflows/logs", params={"limit": 1}).json()
    assert logs["page"] == 1 and logs["limit"] == 1 and logs["total"] >= 1
    entry = logs["data"][0]
    assert entry["workflow_run"]["id"] == run_id and entry["workflow_run"]["status"] == "succeeded"
    assert entry["created_by_end_user"]["session_id"] == "py-user"
    assert entry["created_from"] == "service-api"


async def test_python_sdk_blocking_run_detail_logs_parameters_and_info(stack: Stack) -> None:
    _, key = await app(stack, "alice", grade())
    dify = WorkflowApp(stack.base_url, key)
    run_id = await asyncio.to_thread(_blocking_detail_parameters_info, dify)
    await history_caught_up(stack.nats_url)
    await asyncio.to_thread(_logs, dify, run_id)


def _streaming_then_stop(dify: WorkflowApp) -> None:
    response = dify.run({}, "py-stopper", mode="streaming")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    stream = events(response)
    seen: list[dict[str, Any]] = []
    for event in stream:
        seen.append(event)
        if event["event"] == "node_started" and event["data"]["node_type"] == "delay":
            break
    assert [e["data"]["node_type"] for e in seen if e["event"] == "node_started"] == [
        "start",
        "delay",
    ]
    task_id = seen[0]["task_id"]
    stopped = dify.request("POST", f"/workflows/tasks/{task_id}/stop", {"user": "py-stopper"})
    assert stopped.json() == {"result": "success"}
    rest = list(stream)
    final = rest[-1]
    assert final["event"] == "workflow_finished"
    assert final["data"]["status"] == "stopped" and final["data"]["error"] == "Stopped by user."
    # Stopping again, now that it is over, is still a success.
    again = dify.request("POST", f"/workflows/tasks/{task_id}/stop", {"user": "py-stopper"})
    assert again.json() == {"result": "success"}


async def test_python_sdk_streaming_run_and_stop(stack: Stack) -> None:
    _, key = await app(stack, "alice", delay_then_template(60))
    await asyncio.to_thread(_streaming_then_stop, WorkflowApp(stack.base_url, key))


def _drop_and_reattach(dify: WorkflowApp) -> None:
    response = dify.run({}, "py-drop", mode="streaming")
    run_id = ""
    for event in events(response):
        run_id = event["workflow_run_id"]
        if event["event"] == "node_started" and event["data"]["node_id"] == "wait":
            break
    response.close()  # the connection drops mid-run

    params = {"user": "py-drop"}
    again = dify.request("GET", f"/workflow/{run_id}/events", params=params, stream=True)
    assert again.status_code == 200
    followed = list(events(again))
    assert followed[-1]["event"] == "workflow_finished"
    assert followed[-1]["data"]["status"] == "succeeded"  # the run went on without its stream

    finished = dify.request("GET", f"/workflow/{run_id}/events", params=params, stream=True)
    assert [e["event"] for e in events(finished)] == ["workflow_finished"]
    stranger = dify.request("GET", f"/workflow/{run_id}/events", params={"user": "py-other"})
    assert stranger.status_code == 404


async def test_python_sdk_reattaches_after_a_dropped_stream(stack: Stack) -> None:
    _, key = await app(stack, "alice", delay_then_template(0.5))
    await asyncio.to_thread(_drop_and_reattach, WorkflowApp(stack.base_url, key))
