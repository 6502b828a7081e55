"""`make bench`: start the stack as `make run` does and measure it; a benchmark, not a test.

Every HTTP load phase is driven by wrk (`bench.wrk`, `bench.load`), whichever system it measures.
Phases, in order, all in one run (see docs/benchmarks.md for how each figure is measured):

1. the stack (`flowstream_launcher.child_stack`): runs at 1, 32 and 256 connections, with CPU
   and NATS messages per run of each process;
2. ceilings (`bench.ceilings`): a bare FastAPI SSE endpoint serving the same frames, and a NATS
   request/reply round trip;
3. on the same stack: a 1,000-node chain (`bench.scale`), disconnect → `stopped`
   (`bench.streams`), a second engine (`bench.scale`), three gateways (`bench.gateways`);
4. on stacks of their own: N open SSE streams (`bench.streams`), a 3-node JetStream cluster
   (`bench.cluster`), history projection per store (`bench.history`), the queue's cost per run
   in process (`bench.limits`), what NATS authorization costs (`bench.nats_auth_cost`);
5. in process, no stack: what the template budgets cost against the code before them
   (`bench.template_budgets`);
6. the peer (`bench.restate_peer`): the same workflow on Restate, installed into bench/.cache/.

Prints a table and writes `bench/results/latest.json` and the figures of docs/benchmarks.md; a
quick run (`BENCH_SECONDS` below 10) writes `bench/results/quick.json` only. Knobs: see
`bench.settings`. Flame graphs of each service are a separate target: `make profile`.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import subprocess
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

from flowstream_launcher.child_stack import ChildStack, child_stack
from flowstream_launcher.dev_auth import issue_token
from flowstream_launcher.nats_server import nats_server_binary

from bench import (
    api,
    ceilings,
    cluster,
    gateways,
    limits,
    load,
    nats_auth_cost,
    replicas,
    report,
    restate_peer,
    scale,
    stack_processes,
    streams,
    template_budgets,
    wrk,
)
from bench.nats_monitor import MessageCounter
from bench.procs import log, raise_fd_limit
from bench.settings import DOC, NATS_DOC, ROOT, BenchSettings
from bench.settle import settled
from bench.workflows import THREE_STEP, run_target, store

CELERY_NOTE = "Celery + Redis: left out of the harness; Restate is the one peer measured"
PEER_PAUSE_S = 1.0  # between the peer's phases: it has no backlog we can see, only a moment


def _version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    first_line = (done.stdout or done.stderr).strip().splitlines()[0]
    return first_line.split(" Copyright")[0]  # wrk prints its copyright on the same line


def _machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "load_generator": f"{_version([wrk.binary(), '-v'])}; 1 thread, bench/lua/run.lua",
        "nats_server": _version([nats_server_binary(), "--version"]),
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
    """Everything measured on the stack `make run` starts."""
    with tempfile.TemporaryDirectory(prefix="flowstream-bench-") as data_dir:
        log("starting the stack")
        async with child_stack(Path(data_dir), cwd=ROOT) as stack:
            await _on_stack(stack, settings, phases, results)
        log("stack stopped")


async def _on_stack(
    stack: ChildStack, settings: BenchSettings, phases: Phases, results: dict[str, Any]
) -> None:
    scale_results: dict[str, Any] = results.setdefault("scale", {})
    token = issue_token(stack.secret, "bench")
    monitor = stack_processes.monitor_of(stack)
    processes = stack_processes.processes(stack)
    between = partial(settled, monitor)
    async with api.client(stack.base_url, token) as client:
        path = await store(client, THREE_STEP)
        frames = await ceilings.record_frames(client, path)
        target = run_target(stack.base_url, path, token)
        await load.warm_up(target)
        messages = MessageCounter(
            monitor,
            processes,
            partial(replicas.metric_total, stack.base_url, gateways.SUBMITTED),
        )
        detail = await load.ladder(
            "flowstream", target, settings.seconds, processes, between, messages
        )
        results["e2e"] = {
            **load.summary(detail),
            "events_per_run": frames.count(b"data: ") - 1,  # every frame but `[DONE]`
            "detail": detail,
        }

        async def ceiling() -> Any:
            return await ceilings.measure(frames, stack.nats_url, settings, between)

        async def chain() -> Any:
            await between()
            log(f"chain: {settings.chain_runs} runs of a 1,000-node chain, one connection")
            return await scale.chain_overhead(
                stack, token, client, detail["c1"], settings, processes
            )

        async def disconnect() -> Any:
            await between()
            log(f"disconnect: {settings.disconnect_samples} disconnects mid-DELAY")
            return await streams.disconnect_to_stopped(
                stack, token, client, settings.disconnect_samples
            )

        async def engines() -> Any:
            return await scale.two_engines(stack, target, settings.seconds, processes, between)

        def target_for(base_url: str) -> wrk.Target:
            return run_target(base_url, path, token)

        async def three_gateways() -> Any:
            return await gateways.one_vs_three(
                stack, target_for, settings.seconds, processes, monitor, between
            )

        await phases.run("ceilings", results, "ceiling", ceiling)
        await phases.run("chain", scale_results, "chain", chain)
        await phases.run("disconnect", scale_results, "disconnect", disconnect)
        await phases.run("engines", scale_results, "engines", engines)
        await phases.run("gateways", scale_results, "gateways", three_gateways)


async def _peer_pause() -> None:
    await asyncio.sleep(PEER_PAUSE_S)


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
            "connections": list(load.CONNECTIONS),
            "streams": settings.streams,
            "chain_runs": settings.chain_runs,
            "disconnect_samples": settings.disconnect_samples,
            "history_runs": settings.history_runs,
            "rtt_requests": settings.rtt_requests,
            "limit_runs": settings.limit_runs,
            "template_alternations": settings.template_alternations,
            "skipped": sorted(settings.skip),
            "fd_limit": fd_limit,
        },
    }
    phases = Phases(settings)
    await _stack_phases(settings, phases, results)
    scale_results = results["scale"]

    async def open_streams() -> Any:
        log(f"streams: {settings.streams} open SSE streams on one gateway (a stack of its own)")
        return await streams.open_streams(settings)

    async def three_nodes() -> Any:
        log("cluster: a 3-node JetStream cluster, replicas 3 (a stack of its own)")
        return await cluster.versus_single_node(settings, results.get("e2e", {}))

    async def history() -> Any:
        log(f"history: projection of {settings.history_runs} runs per store")
        return await scale.history_rates(settings)

    async def queue_costs() -> Any:
        log(f"limits: the queue's cost per run, {settings.limit_runs} runs per step")
        return await limits.measure(settings.limit_runs)

    async def authorization() -> Any:
        log("auth: NATS authorization on and off, side by side (servers and a stack of its own)")
        return await nats_auth_cost.measure()

    async def templates() -> Any:
        log(f"templates: the budgets' cost, {settings.template_alternations} before/after pairs")
        return await template_budgets.measure(settings.template_alternations)

    async def restate() -> Any:
        log("peer: Restate (installed into bench/.cache/ on first use)")
        return await restate_peer.measure(settings, _peer_pause)

    peers: dict[str, Any] = {}
    await phases.run("streams", scale_results, "streams", open_streams)
    await phases.run("cluster", scale_results, "cluster", three_nodes)
    await phases.run("history", scale_results, "history", history)
    await phases.run("limits", scale_results, "queue", queue_costs)
    await phases.run("auth", scale_results, "nats_auth", authorization)
    await phases.run("templates", scale_results, "templates", templates)
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
        report.write_doc(results, nats_doc=NATS_DOC)
        print(f"figures: {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    asyncio.run(_main())
