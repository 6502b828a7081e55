"""Pausing and resuming a run over the whole stack: held at a node boundary, then continued."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import Stack
from tests.support import GREET, delay_then_template, history_caught_up, sse_frames


async def test_pause_during_a_delay_then_resume_finishes_the_run(stack: Stack) -> None:
    workflow_id = await stack.create_workflow("alice", delay_then_template(0.5))
    async with stack.client("alice") as client:
        run_id = (
            await client.post("/api/executions", json={"workflow_id": workflow_id, "inputs": {}})
        ).json()["id"]
        seen: list[dict[str, Any]] = []
        async with client.stream("GET", f"/api/executions/{run_id}/events") as response:
            assert response.status_code == 200
            frames = sse_frames(response)
            async for frame in frames:
                event = frame.json()
                seen.append(event)
                if event["event"] == "node_started" and event["data"]["node_id"] == "wait":
                    break
            paused = await client.post(f"/api/executions/{run_id}/pause")
            assert paused.status_code == 202
            assert paused.json() == {"id": run_id, "result": "pausing"}
            async for frame in frames:
                event = frame.json()
                seen.append(event)
                if event["event"] == "workflow_paused":
                    break
            assert event["data"] == {
                "id": run_id,
                "status": "paused",
                "created_at": event["data"]["created_at"],
                "reason": "pause",
                "node_ids": ["after"],  # what the pause holds
            }
            # Paused: the DELAY ran to its end and nothing after it started.
            started = [e["data"]["node_id"] for e in seen if e["event"] == "node_started"]
            assert started == ["start", "wait"]

            await history_caught_up(stack.nats_url)
            detail = (await client.get(f"/api/executions/{run_id}")).json()
            assert detail["status"] == "paused"

            resumed = await client.post(f"/api/executions/{run_id}/resume")
            assert resumed.status_code == 202
            assert resumed.json() == {"id": run_id, "result": "resuming"}
            rest = [f async for f in frames]
        assert rest[-1].data == "[DONE]"
        seen.extend(f.json() for f in rest[:-1])

        names = [
            e["event"]
            if not e["event"].startswith("node_")
            else f"{e['event']}({e['data']['node_id']})"
            for e in seen
            if e["event"] != "workflow_progress"
        ]
        at = names.index("node_finished(wait)")
        assert names[at : at + 4] == [
            "node_finished(wait)",
            "workflow_paused",
            "workflow_resumed",
            "node_started(after)",
        ]
        assert names.count("workflow_paused") == names.count("workflow_resumed") == 1
        final = seen[-1]
        assert final["event"] == "workflow_finished" and final["data"]["status"] == "succeeded"
        assert final["data"]["outputs"] == {"message": "done"}

        for action in ("pause", "resume"):
            late = await client.post(f"/api/executions/{run_id}/{action}")
            assert late.status_code == 409 and late.json()["code"] == "conflict"


async def test_pause_and_resume_are_only_for_the_owner(stack: Stack) -> None:
    workflow_id = await stack.create_workflow("alice", delay_then_template(60))
    async with stack.client("alice") as alice:
        run_id = (
            await alice.post("/api/executions", json={"workflow_id": workflow_id, "inputs": {}})
        ).json()["id"]
        async with stack.client("mallory") as mallory:
            for action in ("pause", "resume"):
                other = await mallory.post(f"/api/executions/{run_id}/{action}")
                assert other.status_code == 404 and other.json()["code"] == "not_found"
        missing = await alice.post("/api/executions/no-such-run/pause")
        assert missing.status_code == 404
        # Paused, then cancelled: the run ends stopped with its one workflow_finished.
        assert (await alice.post(f"/api/executions/{run_id}/pause")).status_code == 202
        assert (await alice.post(f"/api/executions/{run_id}/cancel")).status_code == 202
        async with alice.stream("GET", f"/api/executions/{run_id}/events") as response:
            events = [f.json() for f in [f async for f in sse_frames(response)][:-1]]
        finished = [e["data"] for e in events if e["event"] == "workflow_finished"]
        assert [f["status"] for f in finished] == ["stopped"]
        assert "workflow_resumed" not in {e["event"] for e in events}


async def test_a_finished_run_cannot_be_paused(stack: Stack) -> None:
    workflow_id = await stack.create_workflow("alice", GREET)
    async with stack.client("alice") as client:
        run_id = (
            await client.post(
                "/api/executions", json={"workflow_id": workflow_id, "inputs": {"name": "Ada"}}
            )
        ).json()["id"]
        async with client.stream("GET", f"/api/executions/{run_id}/events") as response:
            frames = [f async for f in sse_frames(response)]
        assert frames[-1].data == "[DONE]"
        for action in ("pause", "resume"):
            late = await client.post(f"/api/executions/{run_id}/{action}")
            assert late.status_code == 409 and late.json()["code"] == "conflict"
