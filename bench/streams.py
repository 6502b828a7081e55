"""The two phases wrk cannot drive, held by raw sockets (`bench.rawsse`) instead.

- streams: a stack of its own (its engine allowed enough concurrent runs), N SSE streams on runs
  waiting in a long DELAY; the gateway's RSS from /proc before and after: memory per idle stream.
- disconnect: a run parked in a long DELAY; the client closes its socket at a known instant; the
  clock stops when the run's `workflow_finished` with status `stopped` reaches a NATS
  subscription of this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import nats
from flowstream_launcher.child_stack import ChildStack, child_stack
from flowstream_launcher.dev_auth import issue_token
from flowstream_shared import subjects

from bench import api, load, stack_processes
from bench.procs import log, rss_kb
from bench.rawsse import RawStream, open_stream
from bench.samples import median, percentile
from bench.settings import ROOT, BenchSettings
from bench.settle import settled
from bench.workflows import THREE_STEP, long_delay, run_target, store, workflow_id

IN_DELAY = b'"node_type":"DELAY"'  # in the DELAY node's node_started
STOPPED = b'"status":"stopped"'
NO_INPUTS: dict[str, object] = {"inputs": {}}
IDLE_TARGET_KIB = 16


async def disconnect_to_stopped(
    stack: ChildStack, token: str, client: httpx.AsyncClient, samples: int
) -> dict[str, Any]:
    path = await store(client, long_delay())
    host, port = "127.0.0.1", stack.ports["gateway"]
    finished: dict[str, asyncio.Future[tuple[float, bytes]]] = {}

    async def on_finished(msg: Any) -> None:
        received = time.perf_counter()
        address = subjects.parse_event_subject(msg.subject)
        future = finished.get(address.run.run_id) if address else None
        if future is not None and not future.done():
            future.set_result((received, msg.data))

    nc = await nats.connect(stack.nats_url)
    latencies: list[float] = []
    not_stopped = 0
    try:
        subject = f"{subjects.EVENTS_PREFIX}.*.{workflow_id(path)}.*.workflow_finished"
        await nc.subscribe(subject, cb=on_finished)
        await nc.flush()
        for index in range(samples + 1):  # the first one warms up
            stream = await open_stream(host, port, path, NO_INPUTS, token)
            await stream.read_until(IN_DELAY, timeout_s=30)
            future = finished[stream.run_id()] = asyncio.get_running_loop().create_future()
            closed_at = time.perf_counter()
            stream.close()
            received, payload = await asyncio.wait_for(future, timeout=60)
            if index == 0:
                continue
            if STOPPED not in payload:
                not_stopped += 1
            latencies.append(received - closed_at)
    finally:
        await nc.close()
    ordered = sorted(latencies)
    return {
        "samples": len(ordered),
        "p50_ms": round(median(ordered) * 1000, 2),
        "p99_ms": round(percentile(ordered, 0.99) * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
        "not_stopped": not_stopped,
    }


async def open_streams(settings: BenchSettings) -> dict[str, Any]:
    """N open SSE streams on one gateway process: its RSS per stream."""
    n = settings.streams
    # One user holds every stream: its stream quota (256 by default) is raised with the engine's
    # concurrency, or the gateway would answer 429 past the quota.
    extra_env = {
        "FLOWSTREAM_ENGINE_CONCURRENCY": str(min(100_000, n + 256)),
        "FLOWSTREAM_USER_MAX_STREAMS": str(n + 256),
    }
    with tempfile.TemporaryDirectory(prefix="flowstream-bench-streams-") as data_dir:
        async with child_stack(Path(data_dir), cwd=ROOT, extra_env=extra_env) as stack:
            token = issue_token(stack.secret, "bench")
            gateway_port = stack.ports["gateway"]
            pids = stack_processes.processes(stack)
            gateway, engine = pids["gateway"], pids["engine"]
            async with api.client(stack.base_url, token) as client:
                path = await store(client, long_delay())
                greet = await store(client, THREE_STEP)
            await load.warm_up(run_target(stack.base_url, greet, token))
            # Warm the stream path itself (first DELAY runs, first disconnects), then measure.
            await _hold_streams(gateway_port, path, token, 50, hold_s=0.5)
            await settled(stack_processes.monitor_of(stack))
            await asyncio.sleep(1.0)
            before = {"gateway": rss_kb(gateway), "engine": rss_kb(engine)}
            held = await _hold_streams(
                gateway_port,
                path,
                token,
                n,
                hold_s=1.0,
                rss_of={"gateway": gateway, "engine": engine},
            )
    opened = held["opened"]
    per_stream = (
        round((held["rss_kb"]["gateway"] - before["gateway"]) / opened, 2) if opened else None
    )
    return {
        "requested": n,
        "opened": opened,
        "in_delay": held["in_delay"],
        "failed": held["failed"],
        "open_seconds": held["open_seconds"],
        "gateway_rss_before_mb": round(before["gateway"] / 1024, 1),
        "gateway_rss_after_mb": round(held["rss_kb"]["gateway"] / 1024, 1),
        "gateway_rss_per_stream_kb": per_stream,
        "target_kb": IDLE_TARGET_KIB,
        "engine_rss_before_mb": round(before["engine"] / 1024, 1),
        "engine_rss_after_mb": round(held["rss_kb"]["engine"] / 1024, 1),
        "first_error": held["first_error"],
    }


async def _hold_streams(
    port: int,
    path: str,
    token: str,
    n: int,
    hold_s: float,
    rss_of: dict[str, int] | None = None,
    opening_at_once: int = 64,
) -> dict[str, Any]:
    """Open `n` streams (at most `opening_at_once` opening at a time), wait until their runs are in
    the DELAY, read the RSS of the processes in `rss_of`, then close them all."""
    gate = asyncio.Semaphore(opening_at_once)
    streams: list[RawStream] = []
    errors: list[str] = []
    in_delay = 0

    async def one() -> None:
        nonlocal in_delay
        try:
            async with gate:
                stream = await open_stream("127.0.0.1", port, path, NO_INPUTS, token)
            streams.append(stream)
            await stream.read_until(IN_DELAY, timeout_s=max(60.0, n / 20))
            in_delay += 1
        except (OSError, TimeoutError, ConnectionError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    open_seconds = time.perf_counter() - started
    drains = [asyncio.create_task(s.drain_forever()) for s in streams]
    await asyncio.sleep(hold_s)
    rss = {name: rss_kb(pid) for name, pid in (rss_of or {}).items()}
    if rss:
        log(f"streams: {len(streams)} open, {in_delay} in DELAY, RSS {rss} KiB")
    for stream in streams:
        stream.close()
    for drain in drains:
        drain.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*drains, return_exceptions=True)
    return {
        "opened": len(streams),
        "in_delay": in_delay,
        "failed": len(errors),
        "first_error": errors[0] if errors else None,
        "open_seconds": round(open_seconds, 2),
        "rss_kb": rss,
    }
