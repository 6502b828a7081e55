"""End-to-end runs over SSE: the time from sending the request to reading `workflow_finished`."""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass

import httpx

FINISHED = b'"event":"workflow_finished"'
DONE = b"data: [DONE]"


@dataclass(frozen=True)
class LatencyStats:
    runs: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    runs_per_s: float
    errors: int


def _percentile(sorted_values: list[float], q: float) -> float:
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
        p90_ms=round(_percentile(ordered, 0.90) * 1000, 3),
        p99_ms=round(_percentile(ordered, 0.99) * 1000, 3),
        runs_per_s=round(len(ordered) / seconds, 1) if seconds else 0.0,
        errors=errors,
    )


async def one_run(client: httpx.AsyncClient, url: str, body: dict[str, object]) -> float:
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


async def sequential(
    client: httpx.AsyncClient, url: str, body: dict[str, object], runs: int
) -> LatencyStats:
    latencies: list[float] = []
    errors = 0
    started = time.perf_counter()
    for _ in range(runs):
        try:
            latencies.append(await one_run(client, url, body))
        except (RuntimeError, httpx.HTTPError):
            errors += 1
    return summarize(latencies, time.perf_counter() - started, errors)


async def concurrent(
    client: httpx.AsyncClient, url: str, body: dict[str, object], clients: int, seconds: float
) -> LatencyStats:
    """`clients` loops, each starting its next run when the last one finishes, for `seconds`."""
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal errors
        while time.perf_counter() < stop_at:
            try:
                latencies.append(await one_run(client, url, body))
            except (RuntimeError, httpx.HTTPError):
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(clients)))
    return summarize(latencies, time.perf_counter() - started, errors)
