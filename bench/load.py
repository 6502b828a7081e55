"""Load phases shared by every system measured: ours, the bare SSE ceiling and the Restate peer.

Each phase is one wrk run (`bench.wrk`) with the CPU of the system's processes read around it
(`bench.cpu`), so every system is driven by the same generator at the same connection counts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict
from typing import Any

from bench import wrk
from bench.cpu import CpuMeter
from bench.nats_monitor import MessageCounter
from bench.procs import log

CONNECTIONS = (1, 32, 256)
WARM_UP_RUNS = 20
WARM_UP_LIMIT_S = 120.0


async def measure(
    target: wrk.Target,
    connections: int,
    seconds: float,
    processes: Mapping[str, int],
    max_runs: int | None = None,
    timeout_s: float = wrk.DEFAULT_TIMEOUT_S,
) -> dict[str, Any]:
    """One wrk run: its figures, and `cpu` (per run and in cores) of each process."""
    meter = CpuMeter(processes)
    meter.start()
    stats = await wrk.run(target, connections, seconds, max_runs, timeout_s)
    if stats.first_failure:
        log(f"{stats.errors} failed runs; the first: {stats.first_failure[:200]}")
    return {**asdict(stats), "cpu": meter.per_run(stats.runs)}


async def warm_up(target: wrk.Target, runs: int = WARM_UP_RUNS) -> None:
    """Imports, caches, connection pools: paid before anything is measured."""
    stats = await wrk.run(target, 1, WARM_UP_LIMIT_S, max_runs=runs)
    if stats.runs == 0:
        why = stats.first_failure or (
            f"{stats.errors} socket errors or timeouts"
            if stats.errors
            else f"no run ended within {WARM_UP_LIMIT_S:g} s"
        )
        raise wrk.WrkError(f"no successful run while warming up: {why}")


async def ladder(
    name: str,
    target: wrk.Target,
    seconds: float,
    processes: Mapping[str, int],
    between: Callable[[], Awaitable[object]],
    messages: MessageCounter | None = None,
) -> dict[str, dict[str, Any]]:
    """1, 32 and 256 connections, `seconds` each, `between()` (waiting for idle) before each;
    with `messages`, the NATS messages per run of each process too (read once idle again)."""
    detail: dict[str, dict[str, Any]] = {}
    for connections in CONNECTIONS:
        await between()
        before = await messages.snapshot() if messages else None
        log(f"{name}: {connections} connection(s), {seconds:g} s")
        figures = await measure(target, connections, seconds, processes)
        if messages and before:
            await between()
            figures["nats_messages_per_run"] = messages.per_run(before, await messages.snapshot())
        detail[f"c{connections}"] = figures
    return detail


def summary(detail: Mapping[str, Mapping[str, Any]], prefix: str = "") -> dict[str, Any]:
    """Flat figures from a ladder: `runs_per_s` (at 32 connections) and `<figure>_c<n>`."""
    flat: dict[str, Any] = {}
    if "c32" in detail:
        flat[f"{prefix}runs_per_s"] = detail["c32"]["runs_per_s"]
    for key, stats in detail.items():
        for figure in ("runs_per_s", "p50_ms", "p99_ms"):
            flat[f"{prefix}{figure}_{key}"] = stats[figure]
    return flat
