"""WebSocket streams: one run by id, or every run of the caller."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import Stack
from tests.support import GREET, delay_then_template


def _ws_url(stack: Stack, path: str) -> str:
    return stack.base_url.replace("http://", "ws://") + path


async def _messages(socket: ClientConnection) -> list[dict[str, Any]]:
    received = []
    try:
        async for message in socket:
            received.append(json.loads(message))
    except ConnectionClosed:
        pass
    return received


async def test_a_run_socket_replays_and_follows_until_finished(stack: Stack) -> None:
    workflow_id = await stack.create_workflow("alice", delay_then_template(0.5))
    async with stack.client("alice") as client:
        run_id = (
            await client.post("/api/executions", json={"workflow_id": workflow_id, "inputs": {}})
        ).json()["id"]
    url = _ws_url(stack, f"/ws/executions/{run_id}?token={stack.token('alice')}")
    async with connect(url) as socket:
        events = await asyncio.wait_for(_messages(socket), timeout=30)
    assert socket.close_code == 1000
    assert events[0]["event"] == "workflow_started" and events[-1]["event"] == "workflow_finished"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


async def test_the_token_may_come_as_the_first_message(stack: Stack) -> None:
    workflow_id = await stack.create_workflow("alice", GREET)
    async with stack.client("alice") as client:
        run_id = (
            await client.post(
                "/api/executions", json={"workflow_id": workflow_id, "inputs": {"name": "w"}}
            )
        ).json()["id"]
    async with connect(_ws_url(stack, f"/ws/executions/{run_id}")) as socket:
        await socket.send(json.dumps({"token": stack.token("alice")}))
        events = await asyncio.wait_for(_messages(socket), timeout=30)
    assert events[-1]["data"]["outputs"] == {"answer": "Hello w!"}


async def test_the_token_may_come_in_an_authorization_header(stack: Stack) -> None:
    workflow_id = await stack.create_workflow("alice", GREET)
    async with stack.client("alice") as client:
        run_id = (
            await client.post(
                "/api/executions", json={"workflow_id": workflow_id, "inputs": {"name": "h"}}
            )
        ).json()["id"]
    headers = {"Authorization": f"Bearer {stack.token('alice')}"}
    url = _ws_url(stack, f"/ws/executions/{run_id}")
    async with connect(url, additional_headers=headers) as socket:
        events = await asyncio.wait_for(_messages(socket), timeout=30)
    assert events[-1]["data"]["outputs"] == {"answer": "Hello h!"}


@pytest.mark.parametrize(("user", "code"), [(None, 4401), ("mallory", 4404)])
async def test_sockets_refuse_strangers(stack: Stack, user: str | None, code: int) -> None:
    workflow_id = await stack.create_workflow("alice", GREET)
    async with stack.client("alice") as client:
        run_id = (
            await client.post(
                "/api/executions", json={"workflow_id": workflow_id, "inputs": {"name": "s"}}
            )
        ).json()["id"]
    token = stack.token(user) if user else "not-a-token"
    async with connect(_ws_url(stack, f"/ws/executions/{run_id}?token={token}")) as socket:
        assert await _messages(socket) == []
    assert socket.close_code == code


async def test_the_user_socket_carries_all_of_the_callers_runs_and_no_one_elses(
    stack: Stack,
) -> None:
    mine = await stack.create_workflow("walt", GREET)
    theirs = await stack.create_workflow("jesse", GREET)
    async with connect(_ws_url(stack, f"/ws?token={stack.token('walt')}")) as socket:
        # The socket is registered once the server has read the token; a ping round trip
        # confirms the server is past that point before runs start.
        await socket.ping()
        async with stack.client("jesse") as jesse:
            await jesse.post(
                f"/api/workflow/{theirs}/execute",
                json={"inputs": {"name": "j"}, "response_mode": "blocking"},
            )
        async with stack.client("walt") as walt:
            run_ids = [
                (
                    await walt.post(
                        f"/api/workflow/{mine}/execute",
                        json={"inputs": {"name": f"w{i}"}, "response_mode": "blocking"},
                    )
                ).json()["workflow_run_id"]
                for i in range(2)
            ]
        finished: set[str] = set()
        seen: set[str] = set()
        while finished != set(run_ids):
            event = json.loads(await asyncio.wait_for(socket.recv(), timeout=30))
            seen.add(event["workflow_run_id"])
            if event["event"] == "workflow_finished":
                finished.add(event["workflow_run_id"])
    assert seen == set(run_ids)


async def test_the_user_socket_refuses_app_keys(stack: Stack) -> None:
    workflow_id = await stack.create_workflow("alice", GREET)
    async with stack.client("alice") as client:
        key = (await client.post("/api/keys", json={"workflow_id": workflow_id})).json()["key"]
    async with connect(_ws_url(stack, f"/ws?token={key}")) as socket:
        assert await _messages(socket) == []
    assert socket.close_code == 4403
