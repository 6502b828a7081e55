"""The shared telemetry conventions: log lines, tracing switches, URL scrubbing, buckets, and the
gateway's per-route HTTP series."""

from __future__ import annotations

import io
import json
import logging

import httpx
import pytest
from fastapi import FastAPI
from flowstream_engine.redaction import LiveSecrets, RedactSecrets
from flowstream_gateway.metrics import GatewayMetrics, HttpMetrics
from flowstream_shared.settings import TelemetrySettings
from flowstream_shared.telemetry.logs import ContextFields, json_formatter, log_context
from flowstream_shared.telemetry.metrics import duration_buckets
from flowstream_shared.telemetry.tracing import ScrubUrls, wanted


def test_buckets_end_at_the_run_timeout() -> None:
    assert duration_buckets(300.0)[-1] == 300.0
    assert duration_buckets(300.0)[-2] == 120
    assert duration_buckets(45.0)[-2:] == (30, 45.0)


@pytest.mark.parametrize(
    ("environ", "exporter"),
    [
        ({}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, "otlp"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, "otlp"),
        ({"OTEL_TRACES_EXPORTER": "console"}, "console"),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, None),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, None),
    ],
)
def test_tracing_is_off_unless_an_exporter_is_named(
    environ: dict[str, str], exporter: str | None
) -> None:
    assert wanted(environ) == exporter


def test_span_urls_lose_their_query_and_credentials() -> None:
    scrub = ScrubUrls(redact=lambda text: text.replace("tok123", "***")).scrub
    assert scrub("https://u:p@api.test/v1/x?api_key=k&q=1") == "https://api.test/v1/x"
    assert scrub("https://api.test/bot/tok123/send") == "https://api.test/bot/***/send"


def capture(*filters: logging.Filter) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(json_formatter("engine"))
    handler.addFilter(ContextFields())
    for extra in filters:
        handler.addFilter(extra)
    logger = logging.getLogger(f"test.telemetry.{id(out)}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    return logger, out


def test_a_line_is_one_json_object_naming_the_run_and_node() -> None:
    logger, out = capture()
    with log_context(run_id="r1", workflow_id="w1"):
        logger.info("outside a node")
        with log_context(node_id="n1"):
            logger.warning("inside %s", "n1", extra={"status": "failed"})
    logger.info("after the run")
    first, second, third = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["service"] == "engine" and first["level"] == "INFO"
    assert (first["run_id"], first["workflow_id"]) == ("r1", "w1") and "node_id" not in first
    assert second["node_id"] == "n1" and second["message"] == "inside n1"
    assert second["status"] == "failed" and {"time", "logger"} <= set(second)
    assert "run_id" not in third


def test_a_traceback_keeps_the_redaction_of_secrets() -> None:
    live = LiveSecrets()
    live.acquire(frozenset({"sk-verysecret"}))
    logger, out = capture(RedactSecrets(live))
    try:
        raise ValueError("refused key sk-verysecret")
    except ValueError:
        logger.exception("calling with sk-verysecret failed")
    line = out.getvalue()
    record = json.loads(line)
    assert "sk-verysecret" not in line and "ValueError" in record["exc_info"]


def test_the_log_level_setting_reads_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWSTREAM_LOG_LEVEL", "debug")
    assert TelemetrySettings().log_level == "DEBUG"


async def test_http_series_use_route_templates_never_raw_paths() -> None:
    metrics = GatewayMetrics()
    app = FastAPI()

    @app.get("/api/executions/{run_id}")
    async def one(run_id: str) -> dict[str, str]:
        return {"id": run_id}

    app.add_middleware(HttpMetrics, metrics=metrics)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        await client.get("/api/executions/a")
        await client.get("/api/executions/b")
        await client.get("/nowhere/1")
    count = metrics.registry.get_sample_value
    template = {"route": "/api/executions/{run_id}", "method": "GET", "code": "200"}
    assert count("flowstream_gateway_http_requests_total", template) == 2
    unmatched = {"route": "unmatched", "method": "GET", "code": "404"}
    assert count("flowstream_gateway_http_requests_total", unmatched) == 1
    seconds = {"route": "/api/executions/{run_id}", "method": "GET"}
    assert count("flowstream_gateway_http_request_duration_seconds_count", seconds) == 2
