"""Health, readiness and metrics, unauthenticated."""

from __future__ import annotations

import httpx
import nats

from tests.e2e.conftest import Stack
from tests.support import GREET, history_caught_up


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


async def test_engine_and_history_serve_health_readiness_and_metrics(stack: Stack) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        for service in ("engine", "history"):
            base = f"http://127.0.0.1:{stack.process.ports[service]}"
            assert (await client.get(f"{base}/healthz")).status_code == 200
            assert (await client.get(f"{base}/readyz")).status_code == 204
            metrics = await client.get(f"{base}/metrics")
            assert metrics.status_code == 200 and "flowstream_" in metrics.text


async def test_history_consumes_and_acknowledges_every_event(stack: Stack) -> None:
    workflow_id = await stack.create_workflow("alice", GREET)
    async with stack.client("alice") as client:
        await client.post(
            f"/api/workflow/{workflow_id}/execute",
            json={"inputs": {"name": "h"}, "response_mode": "blocking"},
        )
    await history_caught_up(stack.nats_url)
    nc = await nats.connect(stack.nats_url)
    try:
        info = await nc.jetstream().consumer_info("FLOWSTREAM_EVENTS", "history")
        assert info.num_ack_pending == 0 and info.num_pending == 0
    finally:
        await nc.close()
