"""`make bench`: start the stack as `make run` does and measure it; a benchmark, not a test.

Phases, in order, all in one run (see docs/benchmarks.md for how each figure is measured):

1. the stack (`flowstream_launcher.child_stack`): end to end over SSE at 1, 32 and 256 clients;
2. ceilings (`bench.ceilings`): a bare FastAPI SSE endpoint with the same frames, and a NATS
   request/reply round trip;
3. scale on the same stack (`bench.scale`): a 1,000-node chain, disconnect → `stopped`, a second
   engine;
4. scale on stacks of their own: N open SSE streams, history projection per store;
5. the peer (`bench.restate_peer`): the same workflow on Restate, installed into bench/.cache/.

Prints a table and writes `bench/results/latest.json` and the figures of docs/benchmarks.md; a
quick run (`BENCH_SECONDS` below 10) writes `bench/results/quick.json` only. Knobs: see
`bench.settings`.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from flowstream_launcher.child_stack import child_stack
from flowstream_launcher.dev_auth import issue_token

from bench import ceilings, e2e, report, restate_peer, scale
from bench.procs import log, raise_fd_limit
from bench.settings import DOC, ROOT, BenchSettings
from bench.settle import settled
from bench.workflows import INPUTS, THREE_STEP, store

CELERY_NOTE = "Celery + Redis: left out of the harness; Restate is the one peer measured"


def _machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }


class Phases:
    """Runs the optional phases: a skipped or failed one is recorded and the run goes on."""

    def __init__(self, settings: BenchSettings) -> None:
        self.settings = settings
        self.not_measured: dict[str, str] = {}

    async def run(
        self, name: str, into: dict[str, Any], key: str, measure: Callable[[], Awaitable[Any]]
    ) -> None:
        if not self.settings.runs_phase(name):
            self.not_measured[name] = "skipped (BENCH_SKIP)"
            return
        try:
            into[key] = await measure()
        except Exception as exc:  # a benchmark reports what it could measure
            log(f"{name}: failed:\n{traceback.format_exc()}")
            self.not_measured[name] = f"failed: {type(exc).__name__}: {exc}"


async def _stack_phases(settings: BenchSettings, phases: Phases, results: dict[str, Any]) -> None:
    """Everything measured on the stack `make run` starts: e2e, ceilings, chain, disconnect,
    a second engine."""
    scale_results: dict[str, Any] = results.setdefault("scale", {})
    with tempfile.TemporaryDirectory(prefix="flowstream-bench-") as data_dir:
        log("starting the stack")
        async with child_stack(Path(data_dir), cwd=ROOT) as stack:
            token = issue_token(stack.secret, "bench")
            async with e2e.client(stack.base_url, token) as client:
                path = await store(client, THREE_STEP)
                run = e2e.sse(client, path, INPUTS)
                await e2e.sequential(run, 20)  # warm-up: imports, caches, connections
                frames = await ceilings.record_frames(client, path)
                await settled(stack.nats_url)
                log(f"e2e: {settings.runs} sequential runs")
                c1 = await e2e.sequential(run, settings.runs)
                await settled(stack.nats_url)
                log(f"e2e: 32 clients, {settings.seconds:g} s")
                c32 = await e2e.concurrent(run, 32, settings.seconds)
                await settled(stack.nats_url)
                log(f"e2e: 256 clients, {settings.seconds:g} s")
                c256 = await e2e.concurrent(run, 256, settings.seconds)
                results["e2e"] = {
                    "p50_ms_c1": c1.p50_ms,
                    "p99_ms_c1": c1.p99_ms,
                    "runs_per_s": c32.runs_per_s,
                    "p50_ms_c32": c32.p50_ms,
                    "p99_ms_c32": c32.p99_ms,
                    "runs_per_s_c256": c256.runs_per_s,
                    "p50_ms_c256": c256.p50_ms,
                    "p99_ms_c256": c256.p99_ms,
                    "events_per_run": frames.count(b"data: ") - 1,
                    "detail": {"c1": asdict(c1), "c32": asdict(c32), "c256": asdict(c256)},
                }

                async def ceiling() -> Any:
                    await settled(stack.nats_url)
                    return await ceilings.measure(frames, stack.nats_url, settings)

                async def chain() -> Any:
                    await settled(stack.nats_url)
                    log(f"scale: {settings.chain_runs} runs of a 1,000-node chain")
                    return await scale.chain_overhead(client, c1.p50_ms, settings)

                async def disconnect() -> Any:
                    await settled(stack.nats_url)
                    log(f"scale: {settings.disconnect_samples} disconnects mid-DELAY")
                    return await scale.disconnect_to_stopped(
                        stack, token, client, settings.disconnect_samples
                    )

                async def engines() -> Any:
                    log(f"scale: 32 clients with 1, then 2 engines, {settings.seconds:g} s each")
                    return await scale.two_engines(stack, client, path, settings.seconds)

                await phases.run("ceilings", results, "ceiling", ceiling)
                await phases.run("chain", scale_results, "chain", chain)
                await phases.run("disconnect", scale_results, "disconnect", disconnect)
                await phases.run("engines", scale_results, "engines", engines)
        log("stack stopped")


async def _main() -> None:
    settings = BenchSettings.from_env()
    fd_limit = raise_fd_limit()
    started = time.perf_counter()
    results: dict[str, Any] = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": _machine(),
        "settings": {
            "bench_seconds": settings.seconds,
            "quick": settings.quick,
            "sequential_runs": settings.runs,
            "streams": settings.streams,
            "chain_runs": settings.chain_runs,
            "disconnect_samples": settings.disconnect_samples,
            "history_runs": settings.history_runs,
            "rtt_requests": settings.rtt_requests,
            "skipped": sorted(settings.skip),
            "fd_limit": fd_limit,
        },
    }
    phases = Phases(settings)
    await _stack_phases(settings, phases, results)
    scale_results = results["scale"]

    async def streams() -> Any:
        log(f"scale: {settings.streams} open SSE streams on one gateway (a stack of their own)")
        return await scale.open_streams(settings)

    async def history() -> Any:
        log(f"scale: history projection of {settings.history_runs} runs per store")
        return await scale.history_rates(settings)

    async def restate() -> Any:
        log("peer: Restate (installed into bench/.cache/ on first use)")
        return await restate_peer.measure(settings)

    peers: dict[str, Any] = {}
    await phases.run("streams", scale_results, "streams", streams)
    await phases.run("history", scale_results, "history", history)
    await phases.run("restate", peers, "restate", restate)
    peers["celery"] = {"skipped": CELERY_NOTE}
    results["peers"] = peers
    results["ratios"] = report.ratios(results)
    if phases.not_measured:
        results["not_measured"] = phases.not_measured
    results["settings"]["wall_seconds"] = round(time.perf_counter() - started, 1)

    order = ["measured_at", "machine", "settings", "e2e", "ceiling", "peers", "ratios", "scale"]
    results = {key: results[key] for key in order if key in results} | results
    path = settings.results_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print()
    report.print_tables(results)
    print(f"\nresults: {path.relative_to(ROOT)} ({results['settings']['wall_seconds']} s)")
    if not settings.quick:
        report.write_doc(results)
        print(f"figures: {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    asyncio.run(_main())
