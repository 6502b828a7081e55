"""Load phases shared by every system measured: ours, the bare SSE ceiling and the Restate peer.

A phase takes `run_once`, a coroutine function that performs one whole run and returns its latency
in seconds, so every system is driven by the same loop at the same concurrency. Two kinds of run:
`sse_run` (the time from sending the request to reading `workflow_finished`) and `json_run` (the
time until a JSON answer has been read, for a peer that answers a run with one response).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

FINISHED = b'"event":"workflow_finished"'
DONE = b"data: [DONE]"

RunOnce = Callable[[], Awaitable[float]]


@dataclass(frozen=True)
class LatencyStats:
    runs: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    runs_per_s: float
    errors: int


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1)))
    return sorted_values[index]


def summarize(latencies: list[float], seconds: float, errors: int) -> LatencyStats:
    ordered = sorted(latencies)
    return LatencyStats(
        runs=len(ordered),
        seconds=round(seconds, 3),
        p50_ms=round(statistics.median(ordered) * 1000, 3) if ordered else float("nan"),
        p90_ms=round(percentile(ordered, 0.90) * 1000, 3),
        p99_ms=round(percentile(ordered, 0.99) * 1000, 3),
        runs_per_s=round(len(ordered) / seconds, 1) if seconds else 0.0,
        errors=errors,
    )


async def sse_run(client: httpx.AsyncClient, url: str, body: dict[str, object]) -> float:
    """Seconds until `workflow_finished` arrives; the stream is then read to `[DONE]`."""
    started = time.perf_counter()
    finished_at = 0.0
    async with client.stream("POST", url, json=body) as response:
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}")
        buffer = b""
        async for chunk in response.aiter_raw():
            buffer += chunk
            if not finished_at and FINISHED in buffer:
                finished_at = time.perf_counter()
            if DONE in buffer:
                break
    if not finished_at:
        raise RuntimeError("stream ended without workflow_finished")
    return finished_at - started


async def json_run(client: httpx.AsyncClient, url: str, body: dict[str, object]) -> float:
    """Seconds until the whole JSON answer has been read."""
    started = time.perf_counter()
    response = await client.post(url, json=body)
    if response.status_code != 200:
        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
    response.json()
    return time.perf_counter() - started


def sse(client: httpx.AsyncClient, url: str, body: dict[str, object]) -> RunOnce:
    return lambda: sse_run(client, url, body)


def json_call(client: httpx.AsyncClient, url: str, body: dict[str, object]) -> RunOnce:
    return lambda: json_run(client, url, body)


async def sequential(run_once: RunOnce, runs: int) -> LatencyStats:
    latencies: list[float] = []
    errors = 0
    started = time.perf_counter()
    for _ in range(runs):
        try:
            latencies.append(await run_once())
        except (RuntimeError, httpx.HTTPError):
            errors += 1
    return summarize(latencies, time.perf_counter() - started, errors)


async def concurrent(run_once: RunOnce, clients: int, seconds: float) -> LatencyStats:
    """`clients` loops, each starting its next run when the last one finishes, for `seconds`."""
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal errors
        while time.perf_counter() < stop_at:
            try:
                latencies.append(await run_once())
            except (RuntimeError, httpx.HTTPError):
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(clients)))
    return summarize(latencies, time.perf_counter() - started, errors)


def client(base_url: str, token: str | None = None, connections: int = 512) -> httpx.AsyncClient:
    """One pooled client per system measured; trust_env=False keeps any proxy out of loopback."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(
        base_url=base_url, headers=headers, timeout=60, limits=limits, trust_env=False
    )
