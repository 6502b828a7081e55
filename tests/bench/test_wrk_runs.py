"""wrk with bench/lua/run.lua counts whole, successful runs only, and stops after max_runs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from flowstream_launcher.nats_server import free_port

from bench import wrk
from bench.procs import helper_process, python_module, wait_http_ok
from bench.settings import ROOT

PATH = "/api/workflow/w/execute"
BODY = json.dumps({"inputs": {"name": "bench"}}).encode()


def _frames(final_status: str) -> bytes:
    events = [{"event": "workflow_started", "data": {"status": "running"}}]
    events += [{"event": "text_chunk", "data": {"text": "x"}}] * 3
    events.append({"event": "workflow_finished", "data": {"status": final_status}})
    body = b"".join(
        b"id: %d\ndata: %s\n\n" % (i, json.dumps(e, separators=(",", ":")).encode())
        for i, e in enumerate(events, 1)
    )
    return body + b"data: [DONE]\n\n"


async def _serve(frames: bytes, tmp_path: Path) -> AsyncIterator[str]:
    frames_file = tmp_path / f"frames-{free_port()}.txt"
    frames_file.write_bytes(frames)
    port = free_port()
    argv = python_module("bench.sse_ceiling", str(port), str(frames_file))
    async with helper_process("sse", argv, cwd=ROOT) as server:
        base = f"http://127.0.0.1:{port}"
        await wait_http_ok(f"{base}/readyz", server)
        yield base


@pytest.fixture
async def succeeding(tmp_path: Path) -> AsyncIterator[str]:
    async for base in _serve(_frames("succeeded"), tmp_path):
        yield base


@pytest.fixture
async def failing(tmp_path: Path) -> AsyncIterator[str]:
    async for base in _serve(_frames("failed"), tmp_path):
        yield base


async def test_every_whole_successful_run_counts(wrk_binary: str, succeeding: str) -> None:
    stats = await wrk.run(wrk.Target(succeeding + PATH, BODY, wrk.SSE_RUN), 4, 1)
    assert stats.runs > 10
    assert stats.errors == 0
    assert stats.runs_per_s == pytest.approx(stats.runs / stats.seconds, rel=0.01)
    assert 0 < stats.p50_ms <= stats.p99_ms <= stats.max_ms


async def test_max_runs_ends_wrk_after_that_many_runs(wrk_binary: str, succeeding: str) -> None:
    target = wrk.Target(succeeding + PATH, BODY, wrk.SSE_RUN)
    stats = await wrk.run(target, 1, 60, max_runs=7)
    assert stats.runs == 7
    assert stats.seconds < 30  # not the 60 s limit: wrk was told to stop


async def test_a_run_that_did_not_succeed_is_an_error(wrk_binary: str, failing: str) -> None:
    stats = await wrk.run(wrk.Target(failing + PATH, BODY, wrk.SSE_RUN), 2, 1)
    assert stats.runs == 0
    assert stats.errors > 0
    assert stats.first_failure is not None
    assert '"status":"failed"' in stats.first_failure


async def test_a_refused_request_is_an_error(wrk_binary: str, succeeding: str) -> None:
    refused = wrk.Target(succeeding + PATH, b'{"unknown": 1}', wrk.SSE_RUN)
    stats = await wrk.run(refused, 2, 1)
    assert stats.runs == 0
    assert stats.first_failure is not None
    assert stats.first_failure.startswith("HTTP 422")


async def test_the_targets_headers_are_sent(wrk_binary: str, succeeding: str) -> None:
    # The endpoint reads a JSON body only when the request says it is JSON.
    as_text = wrk.Target(succeeding + PATH, BODY, wrk.SSE_RUN, {"Content-Type": "text/plain"})
    stats = await wrk.run(as_text, 1, 1)
    assert stats.runs == 0
    assert stats.first_failure is not None
    assert stats.first_failure.startswith("HTTP 422")
