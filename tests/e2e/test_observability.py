"""Traces, logs and secrets over the whole stack, as `make run` starts it, with tracing on.

The stack exports its spans over OTLP/HTTP to a receiver in this test (loopback) and logs at
DEBUG. One run, started with the caller's own `traceparent`, must come back as one trace from
three processes (the gateway's request, the engine's run, its node and the node's HTTP call,
history's write), every line the services print must be one JSON object, and no secret the run
used may appear in any line or any span.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from flowstream_launcher.child_stack import ChildStack, child_stack

from tests.e2e.conftest import ROOT, Stack
from tests.e2e.otlp_sink import OtlpSink, ReceivedSpan, otlp_sink
from tests.e2e.peers import Peer, http_peer
from tests.e2e.test_nodes_http import finish, one_call
from tests.support import history_caught_up, sse_frames
from tests.unit.builders import api_call

pytestmark = pytest.mark.e2e

SERVICES = ("gateway", "engine", "history")
ANSI = re.compile(r"\x1b\[")


@pytest.fixture(scope="module")
async def sink() -> AsyncIterator[OtlpSink]:
    with otlp_sink(asyncio.get_running_loop()) as receiving:
        yield receiving


@pytest.fixture(scope="module")
async def traced(sink: OtlpSink, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": sink.url,
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # ms: spans reach the receiver at once
        "FLOWSTREAM_LOG_LEVEL": "debug",
    }
    async with child_stack(tmp_path_factory.mktemp("traced"), cwd=ROOT, extra_env=env) as process:
        yield Stack(process)


@pytest.fixture(scope="module")
async def peer() -> AsyncIterator[Peer]:
    async with http_peer() as serving:
        yield serving


def service_lines(process: ChildStack) -> dict[str, list[str]]:
    """What each service printed, without the launcher's `name | ` prefix."""
    lines: dict[str, list[str]] = {name: [] for name in SERVICES}
    for line in process.output:
        name, bar, rest = line.partition(" | ")
        if bar and name.strip() in lines:
            lines[name.strip()].append(rest)
    return lines


async def traced_run(stack: Stack, workflow_id: str, owner: str, trace_id: str) -> list[Any]:
    traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
    async with (
        stack.client(owner) as client,
        client.stream(
            "POST",
            f"/api/workflow/{workflow_id}/execute",
            json={"inputs": {}},
            headers={"traceparent": traceparent},
        ) as response,
    ):
        assert response.status_code == 200, await response.aread()
        frames = [frame async for frame in sse_frames(response)]
    return [frame.json() for frame in frames[:-1]]


def of_trace(trace_id: str, *wanted: tuple[str, str]) -> Any:
    """A condition: spans named `name` from `service` exist in the trace, for each pair."""

    def done(spans: list[ReceivedSpan]) -> bool:
        seen = {(s.service, s.name) for s in spans if s.trace_id == trace_id}
        return all(pair in seen for pair in wanted)

    return done


async def test_one_run_is_one_trace_across_three_processes_and_no_secret_leaks(
    traced: Stack, sink: OtlpSink, peer: Peer
) -> None:
    owner = f"traced-{uuid.uuid4().hex[:8]}"
    credential, literal = f"sk-{secrets.token_hex(12)}", f"lit-{secrets.token_hex(12)}"
    async with traced.client(owner) as client:
        stored = await client.post(
            "/api/credentials", json={"name": "crm", "type": "bearer", "value": credential}
        )
        assert stored.status_code == 201, stored.text
    path = f"/echo/{uuid.uuid4().hex[:10]}"
    call = api_call(
        "call",
        f"{peer.url}{path}?api_key={literal}",
        credential="crm",
        headers={"X-Vendor-Token": literal},
    )
    workflow_id = await traced.create_workflow(owner, one_call(call))
    trace_id = secrets.token_hex(16)

    events = await traced_run(traced, workflow_id, owner, trace_id)

    assert finish(events)["status"] == "succeeded", finish(events)
    run_id = events[0]["workflow_run_id"]
    spans = await sink.spans_until(
        of_trace(
            trace_id,
            ("flowstream-gateway", "POST /api/workflow/{workflow_id}/execute"),
            ("flowstream-engine", "run"),
            ("flowstream-engine", "node API_CALL"),
            ("flowstream-engine", "GET"),
            ("flowstream-history", "history write"),
        )
    )
    mine = {s.span_id: s for s in spans if s.trace_id == trace_id}
    by_name = {(s.service, s.name): s for s in mine.values()}
    run = by_name["flowstream-engine", "run"]
    node = by_name["flowstream-engine", "node API_CALL"]
    request = by_name["flowstream-engine", "GET"]
    # The run continues the request's trace; the node is the run's child, the call the node's.
    assert run.attributes["flowstream.run_id"] == run_id
    assert mine[run.parent_span_id].service == "flowstream-gateway"
    assert node.parent_span_id == run.span_id and request.parent_span_id == node.span_id
    written = [s for s in mine.values() if s.name == "history write"]
    assert all(s.attributes["flowstream.run_id"] == run_id for s in written)
    assert all(mine[s.parent_span_id].service == "flowstream-engine" for s in written)
    # The peer got the trace too, from the node's HTTP call.
    assert peer.received(path)[-1].headers["traceparent"].split("-")[1] == trace_id

    # No secret in any span (the call's URL is exported without its query) or any line.
    await history_caught_up(traced.nats_url)
    exported = b"".join(sink.bodies)
    url = request.attributes.get("url.full") or request.attributes.get("http.url")
    assert url == f"{peer.url}{path}"  # the path, never the query
    printed = "\n".join(traced.process.output)
    for value in (credential, literal):
        assert value.encode() not in exported
        assert value not in printed


async def test_every_line_is_json_and_lines_about_a_run_name_it(
    traced: Stack, sink: OtlpSink
) -> None:
    owner = f"logs-{uuid.uuid4().hex[:8]}"
    failing = one_call(api_call("call", "http://127.0.0.1:9/unreachable", timeout=2))
    workflow_id = await traced.create_workflow(owner, failing)
    trace_id = secrets.token_hex(16)

    events = await traced_run(traced, workflow_id, owner, trace_id)

    assert finish(events)["status"] == "failed"
    run_id = events[0]["workflow_run_id"]
    await sink.spans_until(of_trace(trace_id, ("flowstream-engine", "run")))
    lines = service_lines(traced.process)
    records: dict[str, list[dict[str, Any]]] = {}
    for service, printed in lines.items():
        assert printed, f"{service} printed nothing"
        for line in printed:
            assert not ANSI.search(line), line
            record = json.loads(line)  # every line, FastStream's and uvicorn's included
            assert {"time", "level", "logger", "message"} <= set(record), line
            assert record["service"] == service
        records[service] = [json.loads(line) for line in printed]
    about_run = [r for r in records["engine"] if r.get("run_id") == run_id]
    assert about_run and all(r["workflow_id"] == workflow_id for r in about_run)
    assert all(r.get("trace_id") == trace_id for r in about_run if "node_id" not in r)
    (ended,) = [r for r in about_run if r["message"].startswith("run failed")]
    assert ended["level"] == "WARNING" and ended["status"] == "failed"
    assert ended["duration_s"] > 0 and ended["trace_id"] == trace_id
    # DEBUG reaches FastStream's own lines, in the same format.
    assert any(r["logger"].startswith("faststream") for r in records["engine"])
