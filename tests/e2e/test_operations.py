"""Health, readiness and metrics, unauthenticated."""

from __future__ import annotations

import httpx
import nats
from prometheus_client.parser import text_string_to_metric_families

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


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_after_a_run_answer_an_operators_questions(stack: Stack) -> None:
    workflow_id = await stack.create_workflow("alice", GREET)
    ports = stack.process.ports
    async with httpx.AsyncClient(timeout=10) as plain:

        async def scrape() -> dict[str, Samples]:
            return {
                name: samples((await plain.get(f"http://127.0.0.1:{ports[name]}/metrics")).text)
                for name in ("gateway", "engine", "history")
            }

        before = await scrape()
        async with stack.client("alice") as client:
            ran = await client.post(
                f"/api/workflow/{workflow_id}/execute",
                json={"inputs": {"name": "m"}, "response_mode": "blocking"},
            )
            assert ran.status_code == 200, ran.text
            missing = await client.get("/api/executions/no-such-run")
            assert missing.status_code == 404
        await history_caught_up(stack.nats_url)
        after = await scrape()

    def grew(service: str, name: str, **labels: str) -> float:
        return value(after[service], name, **labels) - value(before[service], name, **labels)

    engine = "flowstream_engine_"
    assert grew("engine", f"{engine}run_duration_seconds_count", status="succeeded") >= 1
    assert grew("engine", f"{engine}node_duration_seconds_count", node_type="TEMPLATE",
                status="succeeded") >= 1  # fmt: skip
    assert grew("engine", f"{engine}queue_wait_seconds_count", band="0") >= 1
    # Buckets reach the run timeout (300 s by default), not 10 s.
    assert (f"{engine}run_duration_seconds_bucket",
            frozenset({("status", "succeeded"), ("le", "300.0")})) in after["engine"]  # fmt: skip
    assert (f"{engine}publish_retries_total", frozenset()) in after["engine"]
    assert grew("history", "flowstream_history_events_recorded_total") >= 5
    assert grew("history", "flowstream_history_write_seconds_count") >= 1
    assert grew("history", "flowstream_history_batch_size_count") >= 1
    assert value(after["history"], "flowstream_history_consumer_lag") == 0
    route = "/api/workflow/{workflow_id}/execute"
    assert grew("gateway", "flowstream_gateway_http_requests_total",
                route=route, method="POST", code="200") == 1  # fmt: skip
    assert grew("gateway", "flowstream_gateway_http_requests_total",
                route="/api/executions/{run_id}", method="GET", code="404") == 1  # fmt: skip
    assert grew("gateway", "flowstream_gateway_http_request_duration_seconds_count",
                route=route, method="POST") == 1  # fmt: skip
    raw_path = ("route", f"/api/workflow/{workflow_id}/execute")
    assert not [labels for _, labels in after["gateway"] if raw_path in labels]
    for service in ("gateway", "engine", "history"):  # process, platform and GC collectors
        assert value(after[service], "process_cpu_seconds_total") > 0, service
        assert value(after[service], "python_gc_collections_total", generation="0") > 0
        assert any(name == "python_info" for name, _ in after[service])
