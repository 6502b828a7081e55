"""The executions requests of the document that preceded flowstream (status changes, history,
lists, WebSocket messages), as a client of that document sends them, over the whole stack."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import Stack
from tests.e2e.seed_support import until_event
from tests.support import GREET, delay_then_template, history_caught_up, read_run_log


def _user() -> str:
    return f"exe-{uuid.uuid4().hex[:8]}"


async def _start(client: httpx.AsyncClient, workflow_id: str, **inputs: Any) -> str:
    started = await client.post(
        "/api/executions", json={"workflow_id": workflow_id, "input_data": inputs}
    )
    assert started.status_code == 202, started.text
    run_id: str = started.json()["id"]
    return run_id


async def test_status_changes_are_validated_transitions(stack: Stack) -> None:
    user = _user()
    workflow_id = await stack.create_workflow(user, delay_then_template(0.3))
    async with stack.client(user) as client:
        run_id = await _start(client, workflow_id, name="p")
        await until_event(client, run_id, "node_started", count=2)  # the DELAY counts

        paused = await client.put(f"/api/executions/{run_id}", json={"status": "paused"})
        assert paused.status_code == 202, paused.text
        assert paused.json() == {
            "id": run_id,
            "execution_id": run_id,
            "status": "paused",
            "previous_status": "running",
            "result": "pausing",
        }
        await until_event(client, run_id, "workflow_paused")
        again = await client.put(f"/api/executions/{run_id}", json={"status": "paused"})
        assert again.json()["result"] == "unchanged" and again.json()["previous_status"] == "paused"
        async with stack.client(_user()) as stranger:
            hidden = await stranger.put(f"/api/executions/{run_id}", json={"status": "running"})
            assert hidden.status_code == 404

        resumed = await client.put(f"/api/executions/{run_id}", json={"status": "running"})
        assert resumed.json()["result"] == "resuming"
        events = await read_run_log(stack.nats_url, run_id)
        assert events[-1]["data"]["status"] == "succeeded"

        ended = await client.put(f"/api/executions/{run_id}", json={"status": "cancelled"})
        assert ended.status_code == 409 and ended.json()["code"] == "conflict"
        assert "completed" in ended.json()["message"]
        wrong = await client.put(f"/api/executions/{run_id}", json={"status": "completed"})
        assert wrong.status_code == 400 and wrong.json()["message"].startswith("status")

        long_run = await _start(client, await stack.create_workflow(user, delay_then_template(30)))
        await until_event(client, long_run, "node_started", count=2)
        cancelled = await client.put(
            f"/api/executions/{long_run}",
            json={"status": "cancelled", "reason": "no longer needed"},
        )
        assert cancelled.json()["result"] == "cancelling"
        events = await read_run_log(stack.nats_url, long_run)
        assert events[-1]["data"]["status"] == "stopped"
        assert events[-1]["data"]["error"] == "no longer needed"


async def test_status_filters_history_entries_and_page_size(stack: Stack) -> None:
    user = _user()
    greet = await stack.create_workflow(user, GREET)
    waits = await stack.create_workflow(user, delay_then_template(30))
    async with stack.client(user) as client:
        for i in range(11):
            done = await client.post(
                f"/api/workflow/{greet}/execute",
                json={"inputs": {"name": f"n{i}"}, "response_mode": "blocking"},
            )
            assert done.json()["data"]["status"] == "succeeded"
        stopped = await _start(client, waits)
        await until_event(client, stopped, "node_started", count=2)
        await client.put(f"/api/executions/{stopped}", json={"status": "cancelled"})
        await read_run_log(stack.nats_url, stopped)
        await history_caught_up(stack.nats_url)

        page = (await client.get("/api/executions")).json()
        assert page["size"] == 10 and len(page["items"]) == 10 and page["total"] == 12
        assert page["pages"] == 2
        assert all("progress" in r and "elapsed_time" in r for r in page["items"])
        assert (await client.get("/api/executions", params={"size": 101})).status_code == 400
        completed = (
            await client.get("/api/executions", params={"status": "completed", "size": 100})
        ).json()
        assert completed["total"] == 11
        assert {r["status"] for r in completed["items"]} == {"succeeded"}
        cancelled = (await client.get("/api/executions", params={"status": "cancelled"})).json()
        assert [r["id"] for r in cancelled["items"]] == [stopped]
        bogus = await client.get("/api/executions", params={"status": "done"})
        assert bogus.status_code == 400 and bogus.json()["message"].startswith("status")

        history = (await client.get(f"/api/executions/{stopped}/history")).json()
        for entry in history:
            assert {"seq", "event", "payload", "timestamp", "status", "message"} <= set(entry)
            datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00"))
        assert history[0]["message"] == "Execution started"
        assert (history[-1]["event"], history[-1]["status"]) == ("workflow_finished", "cancelled")
        assert history[-1]["message"] == "Execution cancelled: Stopped by user."
        started = [e for e in history if e["event"] == "node_started"]
        assert started[1]["message"] == "Node `wait` started"


def _ws(stack: Stack, path: str, user: str) -> str:
    return stack.base_url.replace("http://", "ws://") + f"{path}?token={stack.token(user)}"


async def _messages(socket: ClientConnection) -> list[dict[str, Any]]:
    received = []
    try:
        async for message in socket:
            received.append(json.loads(message))
    except ConnectionClosed:
        pass
    return received


async def test_websocket_messages_carry_the_seed_fields_on_both_paths(stack: Stack) -> None:
    user = _user()
    greet = await stack.create_workflow(user, GREET)
    broken = dict(
        GREET,
        nodes=[
            GREET["nodes"][0],
            {**GREET["nodes"][1], "config": {"template": "{{ input.name > 1 }}"}},
            GREET["nodes"][2],
        ],
    )
    failing = await stack.create_workflow(user, broken)
    waits = await stack.create_workflow(user, delay_then_template(30))
    async with stack.client(user) as client:
        kinds: dict[str, list[str]] = {}
        for label, workflow_id, path in (
            ("ok", greet, "/ws/{id}"),
            ("failed", failing, "/ws/executions/{id}"),
        ):
            run_id = await _start(client, workflow_id, name="w")
            async with connect(_ws(stack, path.format(id=run_id), user)) as socket:
                messages = await asyncio.wait_for(_messages(socket), timeout=30)
            assert socket.close_code == 1000
            for message in messages:
                assert message["execution_id"] == run_id == message["workflow_run_id"]
                assert datetime.fromisoformat(message["timestamp"].replace("Z", "+00:00"))
                assert message["status"] in ("running", "completed", "failed", "cancelled")
            kinds[label] = [m["type"] for m in messages]
        assert kinds["ok"][0] == "execution_started" and kinds["ok"][-1] == "execution_completed"
        assert "node_started" in kinds["ok"] and "node_completed" in kinds["ok"]
        assert "execution_updated" in kinds["ok"]  # progress
        assert "node_failed" in kinds["failed"] and kinds["failed"][-1] == "execution_failed"

        # The user socket, and a run cancelled while it is watched.
        async with connect(_ws(stack, "/ws", user)) as socket:
            await socket.ping()
            run_id = await _start(client, waits, name="c")
            await until_event(client, run_id, "node_started", count=2)
            await client.put(f"/api/executions/{run_id}", json={"status": "cancelled"})
            while True:
                message = json.loads(await asyncio.wait_for(socket.recv(), timeout=30))
                if message.get("type") == "heartbeat":
                    continue
                assert message["execution_id"] == run_id
                if message["event"] == "workflow_finished":
                    break
        assert (message["type"], message["status"]) == ("execution_cancelled", "cancelled")
