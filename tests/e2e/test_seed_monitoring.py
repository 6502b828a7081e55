"""Monitoring and debugging as the orchestration document shows them, over the whole stack:
statistics with bottlenecks and error analysis, active runs with where they are, realtime load,
custom metrics, and a run stepped through node by node."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.e2e.conftest import Stack
from tests.e2e.seed_support import until_event
from tests.support import history_caught_up, read_run_log


def _user() -> str:
    return f"mon-{uuid.uuid4().hex[:8]}"


def doubling() -> dict[str, Any]:
    """start → Work (doubles `x.v`; fails when `x` has no `v`) → end; Work emits a metric."""
    return {
        "name": f"doubling-{uuid.uuid4().hex[:6]}",
        "description": "",
        "version": "1.0",
        "is_active": True,
        "nodes": [
            {"name": "Start", "node_type": "START",
             "config": {"inputs": [{"name": "x", "type": "object", "required": True}]}},
            {"name": "Work", "node_type": "TEMPLATE", "config": {"template": "{{input.x.v * 2}}"},
             "metrics": {"doubled": "{{work.text}}"}},
            {"name": "End", "node_type": "END", "config": {"outputs": {"result": "{{work.text}}"}}},
        ],
        "connections": [
            {"from_node_id": "start", "to_node_id": "work", "connection_type": "SEQUENCE"},
            {"from_node_id": "work", "to_node_id": "end", "connection_type": "SEQUENCE"},
        ],
    }  # fmt: skip


def waiting(seconds: float) -> dict[str, Any]:
    return {
        "name": f"waiting-{uuid.uuid4().hex[:6]}",
        "nodes": [
            {"name": "Start", "node_type": "START"},
            {"name": "Long wait", "node_type": "DELAY", "config": {"seconds": seconds}},
            {"name": "End", "node_type": "END"},
        ],
        "connections": [
            {"from_node_id": "start", "to_node_id": "long_wait"},
            {"from_node_id": "long_wait", "to_node_id": "end"},
        ],
    }


async def _workflow(client: httpx.AsyncClient, definition: dict[str, Any]) -> str:
    created = await client.post("/api/workflows", json=definition)
    assert created.status_code == 201, created.text
    workflow_id: str = created.json()["id"]
    return workflow_id


async def paused_detail(
    stack: Stack, client: httpx.AsyncClient, run_id: str, count: int = 1
) -> dict[str, Any]:
    """The run's detail once its `count`-th pause is out and recorded."""
    await until_event(client, run_id, "workflow_paused", count)
    await history_caught_up(stack.nats_url)
    detail: dict[str, Any] = (await client.get(f"/api/executions/{run_id}")).json()
    assert detail["status"] == "paused", detail
    return detail


async def test_stats_bottlenecks_errors_and_custom_metrics(stack: Stack) -> None:
    async with stack.client(_user()) as client:
        workflow_id = await _workflow(client, doubling())
        for x in ({"v": 1}, {"v": 20}, {}):
            await client.post(
                f"/api/workflows/{workflow_id}/execute",
                json={"input_data": {"x": x}, "config": {"async": False}},
            )
        await history_caught_up(stack.nats_url)
        stats = (await client.get(f"/api/workflows/{workflow_id}/stats")).json()

        assert stats["total_executions"] == 3 and stats["total"] == 3
        assert stats["success_rate"] == 66.67 and stats["success_ratio"] == 0.6667
        assert stats["avg_execution_time"] > 0 and stats["avg_duration_ms"] > 0
        assert stats["slowest_node"]["node_id"] in {"start", "work", "end"}
        assert {b["node_id"] for b in stats["bottlenecks"]} == {"start", "work", "end"}
        for bottleneck in stats["bottlenecks"]:
            assert {"share", "p95_time", "avg_time", "executions", "title"} <= set(bottleneck)
        [error] = stats["errors"]
        assert error["error_type"] == "TEMPLATE" and error["count"] == 1
        assert error["node_id"] == "work" and "v" in error["message"]
        assert error["last_occurrence"] > 0
        assert stats["errors_by_type"] == {"TEMPLATE": 1}

        custom = (
            await client.get(f"/api/workflows/{workflow_id}/metrics", params={"type": "custom"})
        ).json()
        assert custom["type"] == "custom"
        [doubled] = custom["metrics"]
        assert (doubled["name"], doubled["node_id"], doubled["count"]) == ("doubled", "work", 2)
        assert (doubled["sum"], doubled["min"], doubled["max"]) == (42.0, 2.0, 40.0)
        other = await client.get(f"/api/workflows/{workflow_id}/metrics", params={"type": "cpu"})
        assert other.status_code == 400 and other.json()["message"].startswith("type")


async def test_active_runs_show_where_they_are_and_realtime_shows_the_load(stack: Stack) -> None:
    async with stack.client(_user()) as client:
        workflow_id = await _workflow(client, waiting(30))
        started = await client.post(
            f"/api/workflows/{workflow_id}/execute", json={"execution_name": "long one"}
        )
        run_id = started.json()["id"]
        await until_event(client, run_id, "node_started", count=2)  # `long_wait` is running
        await history_caught_up(stack.nats_url)

        detail = (await client.get(f"/api/executions/{run_id}")).json()
        assert detail["status"] == "running"
        assert detail["current_node"] == "Long wait" and detail["current_step"] == "Long wait"
        assert detail["current_nodes"][0]["node_id"] == "long_wait"
        assert 0 < detail["progress"] < 100 and detail["elapsed_time"] > 0
        not_paused = await client.post(f"/api/executions/{run_id}/step")
        assert not_paused.status_code == 409 and "not paused" in not_paused.json()["message"]

        active = (await client.get("/api/monitor/active")).json()
        [mine] = [a for a in active["active_executions"] if a["execution_id"] == run_id]
        assert mine["current_node"] == "Long wait" and mine["elapsed_time"] > 0
        assert mine["execution_name"] == "long one" and active["total"] >= 1

        realtime = (await client.get("/api/monitor/realtime")).json()
        assert run_id in {a["execution_id"] for a in realtime["active_executions"]}
        assert realtime["executions_per_minute"] >= 1
        load = realtime["system_load"]
        assert load["executing"] >= 1 and load["queue_depth"] >= 0
        assert load["engine_capacity"] >= 1 and 0 < load["engine_utilisation"] <= 100

        stopped = await client.put(f"/api/executions/{run_id}", json={"status": "cancelled"})
        assert stopped.status_code == 202
        events = await read_run_log(stack.nats_url, run_id)
        assert events[-1]["data"]["status"] == "stopped"
        await history_caught_up(stack.nats_url)
        after = (await client.get("/api/monitor/active")).json()
        assert run_id not in {a["execution_id"] for a in after["active_executions"]}


async def test_a_run_stepped_node_by_node_with_its_values_inspected(stack: Stack) -> None:
    async with stack.client(_user()) as client:
        workflow_id = await _workflow(client, doubling())
        started = await client.post(
            f"/api/workflows/{workflow_id}/execute",
            json={"input_data": {"x": {"v": 4}}, "debug": {"step": True}},
        )
        assert started.status_code == 202, started.text
        assert started.json()["debug"] == {"step": True, "breakpoints": []}
        run_id = started.json()["id"]

        detail = await paused_detail(stack, client, run_id)
        assert detail["paused_before"] == ["start"] and detail["pause_reason"] == "step"
        assert detail["nodes"] == [] and detail["progress"] == 0

        stepped = await client.post(f"/api/executions/{run_id}/step")
        assert stepped.status_code == 202, stepped.text
        assert stepped.json()["nodes"] == ["start"]
        detail = await paused_detail(stack, client, run_id, count=2)
        assert detail["paused_before"] == ["work"]
        [start] = detail["nodes"]
        assert start["status"] == "succeeded" and start["outputs"] == {"x": {"v": 4}}

        await client.post(f"/api/executions/{run_id}/step")
        detail = await paused_detail(stack, client, run_id, count=3)
        work = next(n for n in detail["nodes"] if n["node_id"] == "work")
        assert work["outputs"] == {"text": "8"} and detail["paused_before"] == ["end"]

        resumed = await client.put(f"/api/executions/{run_id}", json={"status": "running"})
        assert resumed.json()["result"] == "resuming"
        events = await read_run_log(stack.nats_url, run_id)
        assert events[-1]["data"]["status"] == "succeeded"
        assert events[-1]["data"]["outputs"] == {"result": "8"}
        late = await client.post(f"/api/executions/{run_id}/step")
        assert late.status_code == 409 and late.json()["code"] == "conflict"


async def test_breakpoints_on_the_streaming_route(stack: Stack) -> None:
    async with stack.client(_user()) as client:
        workflow_id = await _workflow(client, doubling())
        for bad, message in (
            (["nowhere"], "no node `nowhere`"),
            (["start", 3], "breakpoints"),
        ):
            refused = await client.post(
                f"/api/workflow/{workflow_id}/execute",
                json={"inputs": {"x": {"v": 1}}, "debug": {"breakpoints": bad}},
            )
            assert refused.status_code == 400 and message in refused.json()["message"]
        started = await client.post(
            "/api/executions",
            json={"workflow_id": workflow_id, "inputs": {"x": {"v": 1}},
                  "debug": {"breakpoints": ["end"]}},
        )  # fmt: skip
        run_id = started.json()["id"]
        events = await until_event(client, run_id, "workflow_paused")
        assert events[-1]["data"]["node_ids"] == ["end"]
        assert events[-1]["data"]["reason"] == "breakpoint"
        ran = [e["data"]["node_id"] for e in events if e["event"] == "node_finished"]
        assert ran == ["start", "work"]
        await client.put(f"/api/executions/{run_id}", json={"status": "running"})
        finished = await read_run_log(stack.nats_url, run_id)
        assert finished[-1]["data"]["status"] == "succeeded"
