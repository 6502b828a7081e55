"""Ceilings measured in the same run: what the machine allows before our code costs anything.

- SSE: `bench.sse_ceiling` serves the frames of a real run recorded from our gateway, with the same
  server (uvicorn, one process) and no auth, NATS or engine; driven by wrk exactly as our gateway
  is (`bench.load`), at 1, 32 and 256 connections.
- NATS: a core request/reply round trip between this process and `bench.nats_echo` (another
  process) through the stack's own nats-server, one request at a time.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import nats
from flowstream_launcher.nats_server import free_port

from bench import load, wrk
from bench.nats_echo import READY, URL_VARIABLE
from bench.procs import helper_process, log, python_module, wait_http_ok, wait_line
from bench.samples import median, percentile
from bench.settings import ROOT, BenchSettings
from bench.workflows import INPUTS

CEILING_PATH = "/api/workflow/ceiling/execute"
RTT_PAYLOAD = b"x" * 256  # about one run event


async def record_frames(client: httpx.AsyncClient, execute_path: str) -> bytes:
    """The SSE body of one real run, exactly as the gateway sent it."""
    async with client.stream("POST", execute_path, json=INPUTS) as response:
        response.raise_for_status()
        return b"".join([chunk async for chunk in response.aiter_raw()])


async def sse_ceiling(
    frames: bytes, settings: BenchSettings, between: Callable[[], Awaitable[object]]
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="flowstream-bench-sse-") as tmp:
        frames_file = Path(tmp) / "frames.txt"
        frames_file.write_bytes(frames)
        port = free_port()
        argv = python_module("bench.sse_ceiling", str(port), str(frames_file))
        async with helper_process("sse-ceiling", argv, cwd=ROOT) as server:
            base = f"http://127.0.0.1:{port}"
            await wait_http_ok(f"{base}/readyz", server)
            target = wrk.Target(base + CEILING_PATH, json.dumps(INPUTS).encode(), wrk.SSE_RUN)
            await load.warm_up(target)
            processes = {"sse-ceiling": server.process.pid}
            detail = await load.ladder("ceiling", target, settings.seconds, processes, between)
    return {
        **load.summary(detail, prefix="sse_"),
        "sse_frames_per_run": frames.count(b"\n\n"),
        "sse_detail": detail,
    }


async def nats_rtt(nats_url: str, requests: int) -> dict[str, Any]:
    subject = f"bench.echo.{uuid.uuid4().hex}"
    argv = python_module("bench.nats_echo", subject)
    env = {**os.environ, URL_VARIABLE: nats_url}
    async with helper_process("nats-echo", argv, env=env, cwd=ROOT) as echo:
        await wait_line(echo, READY)
        nc = await nats.connect(nats_url)
        try:
            for _ in range(200):  # warm-up
                await nc.request(subject, RTT_PAYLOAD, timeout=5)
            samples: list[float] = []
            for _ in range(requests):
                started = time.perf_counter()
                await nc.request(subject, RTT_PAYLOAD, timeout=5)
                samples.append(time.perf_counter() - started)
        finally:
            await nc.close()
    ordered = sorted(samples)
    return {
        "nats_rtt_us": round(median(ordered) * 1e6, 1),
        "nats_rtt_p99_us": round(percentile(ordered, 0.99) * 1e6, 1),
        "nats_rtt_requests": requests,
        "nats_rtt_payload_bytes": len(RTT_PAYLOAD),
    }


async def measure(
    frames: bytes,
    nats_url: str,
    settings: BenchSettings,
    between: Callable[[], Awaitable[object]],
) -> dict[str, Any]:
    log("ceiling: bare SSE endpoint")
    result = await sse_ceiling(frames, settings, between)
    await between()
    log("ceiling: NATS request/reply")
    result.update(await nats_rtt(nats_url, settings.rtt_requests))
    return result
