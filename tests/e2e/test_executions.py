"""The executions API over the whole stack: start, find, inspect, follow and cancel runs."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.conftest import Stack
from tests.support import GREET, delay_then_template, history_caught_up, sse_frames


async def _follow(
    client: httpx.AsyncClient, run_id: str, last_event_id: str | None = None
) -> list[Any]:
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    async with client.stream(
        "GET", f"/api/executions/{run_id}/events", headers=headers
    ) as response:
        assert response.status_code == 200, await response.aread()
        frames = [f async for f in sse_frames(response)]
    assert frames[-1].data == "[DONE]"
    return frames[:-1]


async def test_start_follow_and_inspect_a_run(stack: Stack) -> None:
    workflow_id = await stack.create_workflow("alice", GREET)
    async with stack.client("alice") as client:
        started = await client.post(
            "/api/executions",
            json={
                "workflow_id": workflow_id,
                "inputs": {"name": "Ex"},
                "execution_name": "nightly",
            },
        )
        assert started.status_code == 202
        body = started.json()
        run_id = body["id"]
        assert body["status"] == "pending" and body["execution_name"] == "nightly"
        assert body["task_id"] != run_id and body["workflow_version"] == 1

        frames = await _follow(client, run_id)
        events = [f.json() for f in frames]
        assert events[0]["event"] == "workflow_started"
        assert events[-1]["data"]["outputs"] == {"answer": "Hello Ex!"}

        tail = await _follow(client, run_id, last_event_id=frames[9].id)
        assert [f.id for f in tail] == [f.id for f in frames[10:]]

        await history_caught_up(stack.nats_url)
        detail = (await client.get(f"/api/executions/{run_id}")).json()
        assert detail["status"] == "succeeded" and detail["execution_name"] == "nightly"
        assert detail["inputs"] == {"name": "Ex"} and detail["user_id"] == "alice"
        assert [n["node_id"] for n in detail["nodes"]] == ["start", "greet", "end"]
        timeline = (await client.get(f"/api/executions/{run_id}/history")).json()
        assert [t["payload"] for t in timeline] == events
        again = await client.post(f"/api/executions/{run_id}/cancel")
        assert again.status_code == 409 and again.json()["code"] == "conflict"


async def test_cancel_stops_a_running_execution(stack: Stack) -> None:
    workflow_id = await stack.create_workflow("alice", delay_then_template(60))
    async with stack.client("alice") as client:
        run_id = (
            await client.post("/api/executions", json={"workflow_id": workflow_id, "inputs": {}})
        ).json()["id"]
        async with client.stream("GET", f"/api/executions/{run_id}/events") as response:
            frames = sse_frames(response)
            async for frame in frames:
                event = frame.json()
                if event["event"] == "node_started" and event["data"]["node_id"] == "wait":
                    break
            cancelled = await client.post(f"/api/executions/{run_id}/cancel")
            assert cancelled.status_code == 202
            rest = [f async for f in frames]
        final = rest[-2].json()
        assert final["event"] == "workflow_finished" and final["data"]["status"] == "stopped"
        await history_caught_up(stack.nats_url)
        detail = (await client.get(f"/api/executions/{run_id}")).json()
        assert detail["status"] == "stopped"
        assert {n["node_id"]: n["status"] for n in detail["nodes"]} == {
            "start": "succeeded",
            "wait": "stopped",
        }


async def test_a_disconnected_client_leaves_a_stopped_record(stack: Stack) -> None:
    workflow_id = await stack.create_workflow("alice", delay_then_template(60))
    async with stack.client("alice") as client:
        async with client.stream(
            "POST", f"/api/workflow/{workflow_id}/execute", json={"inputs": {}}
        ) as response:
            async for frame in sse_frames(response):
                event = frame.json()
                run_id = event["workflow_run_id"]
                if event["event"] == "node_started" and event["data"]["node_id"] == "wait":
                    break
        await history_caught_up(stack.nats_url, within_s=5)
        detail = (await client.get(f"/api/executions/{run_id}")).json()
        assert detail["status"] == "stopped" and detail["error"] == "Client disconnected."
        assert [n["node_id"] for n in detail["nodes"] if n["status"] == "succeeded"] == ["start"]


async def test_lists_filter_and_page(stack: Stack) -> None:
    user = "lister"
    greet = await stack.create_workflow(user, GREET)
    failing = dict(
        GREET,
        nodes=[
            *GREET["nodes"][:1],
            {**GREET["nodes"][1], "config": {"template": "{{ input.name > 1 }}"}},
            GREET["nodes"][2],
        ],
    )
    broken = await stack.create_workflow(user, failing)
    async with stack.client(user) as client:
        for workflow_id in (greet, greet, greet, broken):
            await client.post(
                f"/api/workflow/{workflow_id}/execute",
                json={"inputs": {"name": "x"}, "response_mode": "blocking"},
            )
        await history_caught_up(stack.nats_url)
        everything = (await client.get("/api/executions", params={"size": 100})).json()
        assert everything["total"] == 4 and set(everything) == {
            "items",
            "total",
            "page",
            "size",
            "pages",
        }
        mine = (
            await client.get("/api/executions", params={"workflow_id": greet, "size": 2})
        ).json()
        assert mine["total"] == 3 and mine["pages"] == 2 and len(mine["items"]) == 2
        failed = (await client.get("/api/executions", params={"status": "failed"})).json()
        assert [r["workflow_id"] for r in failed["items"]] == [broken]
        newest = everything["items"][0]["created_at"]
        later = (
            await client.get("/api/executions", params={"created_after": newest + 3600})
        ).json()
        assert later["total"] == 0
        too_big = await client.get("/api/executions", params={"size": 101})
        assert too_big.status_code == 400 and too_big.json()["code"] == "invalid_param"
        stats = (await client.get(f"/api/workflows/{greet}/stats")).json()
        assert stats["total"] == 3 and stats["success_rate"] == 100.0 and stats["p95_duration_ms"]
        assert stats["success_ratio"] == 1.0
        summary = (await client.get("/api/executions/summary")).json()
        assert summary["runs_last_minute"] == 4 and summary["active_runs"] == 0
        assert "queue_depth" in summary


async def test_other_users_runs_are_not_found(stack: Stack) -> None:
    workflow_id = await stack.create_workflow("alice", GREET)
    async with stack.client("alice") as alice:
        run_id = (
            await alice.post(
                "/api/executions", json={"workflow_id": workflow_id, "inputs": {"name": "p"}}
            )
        ).json()["id"]
    await history_caught_up(stack.nats_url)
    async with stack.client("bob") as bob:
        for method, url in [
            ("GET", f"/api/executions/{run_id}"),
            ("GET", f"/api/executions/{run_id}/history"),
            ("GET", f"/api/executions/{run_id}/events"),
            ("POST", f"/api/executions/{run_id}/cancel"),
            ("GET", f"/v1/workflows/run/{run_id}"),
            ("GET", f"/api/workflows/{workflow_id}/stats"),
        ]:
            response = await bob.request(method, url)
            assert response.status_code == 404, (method, url, response.text)
        listed = (await bob.get("/api/executions", params={"size": 100})).json()
        assert run_id not in {r["id"] for r in listed["items"]}
        started = await bob.post("/api/executions", json={"workflow_id": workflow_id, "inputs": {}})
        assert started.status_code == 404
