"""Health, readiness and metrics, unauthenticated."""

from __future__ import annotations

from tests.e2e.conftest import Stack
from tests.support import GREET


async def test_health_readiness_and_metrics(stack: Stack) -> None:
    workflow_id = await stack.create_workflow("alice", GREET)
    async with stack.client("alice") as client:
        await client.post(
            f"/api/workflow/{workflow_id}/execute",
            json={"inputs": {"name": "m"}, "response_mode": "blocking"},
        )
    async with stack.client() as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"nats": "ok", "engine": "ok", "history": "ok"}
        metrics = (await client.get("/metrics")).text
        assert 'flowstream_gateway_runs_submitted_total{api="api",mode="blocking"}' in metrics
        docs = await client.get("/openapi.json")
        assert "/api/workflow/{workflow_id}/execute" in docs.json()["paths"]
