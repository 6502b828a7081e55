"""Priorities, the queue view, limits across replicas and quotas, with engines that run one run
at a time (their own stack: `FLOWSTREAM_ENGINE_CONCURRENCY=1`)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from flowstream_launcher.child_stack import child_stack
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import ROOT, Stack
from tests.e2e.queue_support import (
    delay_workflow,
    owner_feed,
    second_engine,
    second_gateway,
    start_run,
    ws_url,
)
from tests.support import GREET, make_token

pytestmark = pytest.mark.e2e

QUOTA = 2  # app keys: runs running or pending, and open streams


@pytest.fixture(scope="module")
async def small(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    env = {
        "FLOWSTREAM_ENGINE_CONCURRENCY": "1",
        "FLOWSTREAM_APP_KEY_MAX_ACTIVE_RUNS": str(QUOTA),
        "FLOWSTREAM_APP_KEY_MAX_STREAMS": str(QUOTA),
    }
    async with child_stack(
        tmp_path_factory.mktemp("flowstream-small"), cwd=ROOT, extra_env=env
    ) as process:
        yield Stack(process)


async def test_a_high_priority_run_submitted_after_ten_low_ones_starts_before_them(
    small: Stack,
) -> None:
    user = f"prio-{uuid.uuid4().hex[:6]}"
    blocker_wf = await small.create_workflow(user, delay_workflow(60))
    greet = await small.create_workflow(user, GREET)
    async with owner_feed(small, user) as feed, small.client(user) as client:
        blocker = (await start_run(client, blocker_wf))["id"]
        await feed.until(lambda _: blocker in feed.started_order([blocker]))
        # The engine is busy: everything below waits in the queue.
        low = [
            (await start_run(client, greet, inputs={"name": f"l{i}"}, priority=0))["id"]
            for i in range(10)
        ]
        high = (await start_run(client, greet, inputs={"name": "h"}, priority=9))["id"]

        queue = (await client.get("/api/queue")).json()["items"]
        assert [item["id"] for item in queue] == [high, *low]
        assert [item["position"] for item in queue] == list(range(1, 12))
        assert [item["priority"] for item in queue] == [9] + [0] * 10
        assert all(item["waiting_for"] == "engine" and item["age_s"] >= 0 for item in queue)

        # Moved up a band: second in line now, and it still runs once.
        moved = low[-1]
        patched = await client.patch(f"/api/executions/{moved}", json={"priority": 5})
        assert patched.status_code == 200, patched.text
        queue = (await client.get("/api/queue")).json()["items"]
        assert [item["id"] for item in queue][:2] == [high, moved]
        # Cancelled from the queue: it ends `stopped` without running a node.
        dropped = low[0]
        cancelled = await client.post(f"/api/executions/{dropped}/cancel")
        assert cancelled.status_code == 202

        await client.post(f"/api/executions/{blocker}/cancel")
        everything = [blocker, *low, high]
        await feed.until(lambda _: feed.finished(everything))
    order = feed.started_order(everything)
    assert order == [blocker, high, dropped, moved, *low[1:-1]]
    assert order.count(moved) == 1
    finished = {e["workflow_run_id"]: e["data"] for e in feed.of("workflow_finished")}
    assert finished[dropped]["status"] == "stopped"
    assert not [
        e for e in feed.of("node_started") if e["workflow_run_id"] == dropped
    ]  # it never ran a node
    assert {finished[run]["status"] for run in [high, moved, *low[1:-1]]} == {"succeeded"}


async def test_a_run_an_engine_has_taken_cannot_be_reprioritised(small: Stack) -> None:
    user = f"prio-{uuid.uuid4().hex[:6]}"
    workflow_id = await small.create_workflow(user, delay_workflow(30))
    async with owner_feed(small, user) as feed, small.client(user) as client:
        run = (await start_run(client, workflow_id))["id"]
        await feed.until(lambda _: run in feed.started_order([run]))
        answer = await client.patch(f"/api/executions/{run}", json={"priority": 9})
        bad = await client.patch(f"/api/executions/{run}", json={"priority": 10})
        await client.post(f"/api/executions/{run}/cancel")
        await feed.until(lambda _: feed.finished([run]))
    assert answer.status_code == 409 and answer.json()["code"] == "conflict"
    assert bad.status_code == 400 and "priority" in bad.json()["message"]


async def test_limits_hold_across_two_gateways_and_two_engines(small: Stack) -> None:
    user = f"pair-{uuid.uuid4().hex[:6]}"
    workflow_id = await small.create_workflow(user, delay_workflow(0.3, {"max_concurrent_runs": 1}))
    headers = {"Authorization": f"Bearer {make_token(small.secret, user)}"}
    async with (
        second_engine(small, concurrency=1) as engine_port,
        second_gateway(small) as other_base,
        owner_feed(small, user) as feed,
        small.client(user) as first,
        httpx.AsyncClient(base_url=other_base, headers=headers, timeout=30) as second,
    ):
        runs = []
        for i in range(6):
            client = first if i % 2 == 0 else second
            runs.append((await start_run(client, workflow_id, inputs={"n": i}))["id"])
        await feed.until(lambda _: feed.finished(runs))
        engines = [small.process.ports["engine"], engine_port]
        async with httpx.AsyncClient() as plain:
            started = [
                _metric(
                    (await plain.get(f"http://127.0.0.1:{port}/metrics")).text,
                    "flowstream_engine_runs_started_total",
                )
                for port in engines
            ]
    assert feed.most_running_at_once(runs) == 1
    assert all(started), started  # both engines executed runs of the workflow
    assert {e["data"]["status"] for e in feed.of("workflow_finished")} == {"succeeded"}


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


async def _app_key(stack: Stack, user: str, workflow_id: str) -> str:
    async with stack.client(user) as client:
        response = await client.post("/api/keys", json={"workflow_id": workflow_id})
        key: str = response.json()["key"]
        return key


async def test_an_app_key_over_its_concurrent_run_quota_gets_429(small: Stack) -> None:
    user = f"quota-{uuid.uuid4().hex[:6]}"
    workflow_id = await small.create_workflow(user, delay_workflow(60))
    key = await _app_key(small, user, workflow_id)
    async with owner_feed(small, user) as feed, small.client(key=key) as client:
        runs = [(await start_run(client, workflow_id))["id"] for _ in range(QUOTA)]
        refused = await client.post("/api/executions", json={"workflow_id": workflow_id})
        dify = await client.post(
            "/v1/workflows/run", json={"inputs": {}, "user": "u", "response_mode": "blocking"}
        )
        # The user's own token has no such quota.
        async with small.client(user) as owner:
            extra = (await start_run(owner, workflow_id))["id"]
        # A run that ends gives its place back (the engine that ends it says so).
        await client.post(f"/api/executions/{runs[0]}/cancel")
        await feed.until(lambda _: feed.finished([runs[0]]))
        again = await client.post("/api/executions", json={"workflow_id": workflow_id})
        assert again.status_code == 202, again.text
        leftovers = [runs[1], extra, again.json()["id"]]
        for run in leftovers:
            await client.post(f"/api/executions/{run}/cancel")
        await feed.until(lambda _: feed.finished(leftovers))
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    body = refused.json()
    assert body["code"] == "too_many_requests" and body["status"] == 429
    assert "quota of concurrent runs" in body["message"]
    assert dify.status_code == 429 and dify.json()["code"] == "too_many_requests"


async def test_an_app_key_over_its_open_stream_quota_gets_429_and_a_closed_socket(
    small: Stack,
) -> None:
    user = f"streams-{uuid.uuid4().hex[:6]}"
    workflow_id = await small.create_workflow(user, delay_workflow(60))
    key = await _app_key(small, user, workflow_id)
    async with owner_feed(small, user) as feed, small.client(key=key) as client:
        run_id = (await start_run(client, workflow_id))["id"]
        events = f"/api/executions/{run_id}/events"
        # Attached to a run that goes on, QUOTA streams stay open.
        async with (
            small.client(key=key) as a,
            small.client(key=key) as b,
            a.stream("GET", events) as first,
            b.stream("GET", events) as second,
        ):
            assert first.status_code == second.status_code == 200
            third = await client.get(events)
            url = ws_url(small.base_url, f"/ws/executions/{run_id}?token={key}")
            async with connect(url) as socket:
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(socket.recv(), timeout=10)
            assert socket.close_code == 4429
        # Closed streams give their places back.
        async with client.stream("GET", events) as fourth:
            assert fourth.status_code == 200
        await client.post(f"/api/executions/{run_id}/cancel")
        await feed.until(lambda _: feed.finished([run_id]))
    assert third.status_code == 429
    assert third.json()["code"] == "too_many_requests"
    assert "quota of open streams" in third.json()["message"]
    assert int(third.headers["Retry-After"]) >= 1
