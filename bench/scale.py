"""Scale figures: a long chain, many open streams, stopping on disconnect, a second engine, history.

- chain: the median latency of a 1,000-node chain (START, 998 plain TEMPLATE nodes, END) against
  the three-node run's, divided by the node count difference: the engine's cost per node.
- disconnect: a run parked in a long DELAY; the client closes its socket; the clock stops when
  the run's `workflow_finished` with status `stopped` reaches a NATS subscription of this process.
- engines: 32-client throughput with the launcher's one engine, then with a second
  `python -m flowstream_engine` on the same NATS (the two share the durable consumer).
- streams: a stack of its own (its engine allowed enough concurrent runs), N SSE streams on runs
  waiting in a long DELAY, held by raw sockets; the gateway's RSS from /proc before and after.
- history: `bench.history.projection_rates`, the projection rate per store.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import nats
from flowstream_launcher.child_stack import ChildStack, child_stack
from flowstream_launcher.dev_auth import issue_token
from flowstream_launcher.nats_server import free_port
from flowstream_shared import subjects
from flowstream_shared.nats_access import Identity

from bench import e2e
from bench.ceilings import record_frames
from bench.procs import helper_process, log, python_module, rss_kb, service_pid, wait_http_ok
from bench.rawsse import RawStream, open_stream
from bench.settings import ROOT, BenchSettings
from bench.settle import settled
from bench.workflows import CHAIN_NODES, INPUTS, THREE_STEP, chain, long_delay, store, workflow_id

IN_DELAY = b'"node_type":"DELAY"'  # in the DELAY node's node_started
STOPPED = b'"status":"stopped"'
NO_INPUTS: dict[str, object] = {"inputs": {}}
_EVENT = re.compile(rb'"event":"([a-z_]+)"')


async def chain_overhead(
    client: httpx.AsyncClient, three_node_p50_ms: float, settings: BenchSettings
) -> dict[str, Any]:
    path = await store(client, chain())
    frames = await record_frames(client, path)  # warm-up, and the events a chain run makes
    stats = await e2e.sequential(e2e.sse(client, path, INPUTS), settings.chain_runs)
    per_node_ms = (stats.p50_ms - three_node_p50_ms) / (CHAIN_NODES - 3)
    return {
        "nodes": CHAIN_NODES,
        "events_per_run": frames.count(b"data: ") - 1,  # every frame but `[DONE]`
        "events_by_type": dict(Counter(m.decode() for m in _EVENT.findall(frames))),
        "p50_ms": stats.p50_ms,
        "three_node_p50_ms": three_node_p50_ms,
        "per_node_us": round(per_node_ms * 1000, 1),
        "detail": asdict(stats),
    }


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
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(e2e.percentile(ordered, 0.99) * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
        "not_stopped": not_stopped,
    }


async def _engine_runs_started(port: int) -> float:
    async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    for line in text.splitlines():
        if line.startswith("flowstream_engine_runs_started_total "):
            return float(line.split()[1])
    return float("nan")


async def two_engines(
    stack: ChildStack, client: httpx.AsyncClient, path: str, seconds: float
) -> dict[str, Any]:
    run = e2e.sse(client, path, INPUTS)
    await settled(stack.nats_url)
    one = await e2e.concurrent(run, 32, seconds)
    port = free_port()
    env = {
        **os.environ,
        **stack.service_env(Identity.ENGINE),
        "FLOWSTREAM_ENGINE_PORT": str(port),
        "FLOWSTREAM_CREDENTIALS_PRIVATE_KEY": stack.credentials_private_key,
        "PYTHONUNBUFFERED": "1",
    }
    async with helper_process("engine-2", python_module("flowstream_engine"), env=env) as engine:
        await wait_http_ok(f"http://127.0.0.1:{port}/readyz", engine)
        await e2e.sequential(run, 20)  # warm-up: the new engine's imports and caches
        await settled(stack.nats_url)
        before = await _engine_runs_started(port)
        two = await e2e.concurrent(run, 32, seconds)
        share = (await _engine_runs_started(port) - before) / max(two.runs, 1)
    return {
        "runs_per_s_1_engine": one.runs_per_s,
        "runs_per_s_2_engines": two.runs_per_s,
        "speedup": round(two.runs_per_s / one.runs_per_s, 2) if one.runs_per_s else None,
        "second_engine_share": round(share, 2),
        "detail": {"1": asdict(one), "2": asdict(two)},
    }


async def open_streams(settings: BenchSettings) -> dict[str, Any]:
    """N open SSE streams on one gateway process: its RSS per stream."""
    n = settings.streams
    extra_env = {"FLOWSTREAM_ENGINE_CONCURRENCY": str(min(100_000, n + 256))}
    with tempfile.TemporaryDirectory(prefix="flowstream-bench-streams-") as data_dir:
        async with child_stack(Path(data_dir), cwd=ROOT, extra_env=extra_env) as stack:
            token = issue_token(stack.secret, "bench")
            gateway_port = stack.ports["gateway"]
            gateway = service_pid("flowstream_gateway", "FLOWSTREAM_GATEWAY_PORT", gateway_port)
            engine = service_pid(
                "flowstream_engine", "FLOWSTREAM_ENGINE_PORT", stack.ports["engine"]
            )
            async with e2e.client(stack.base_url, token) as client:
                path = await store(client, long_delay())
                greet = await store(client, THREE_STEP)
                await e2e.sequential(e2e.sse(client, greet, INPUTS), 20)
            # Warm the stream path itself (first DELAY runs, first disconnects), then measure.
            await _hold_streams(gateway_port, path, token, 50, hold_s=0.5)
            await settled(stack.nats_url)
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
    return {
        "requested": n,
        "opened": opened,
        "in_delay": held["in_delay"],
        "failed": held["failed"],
        "open_seconds": held["open_seconds"],
        "gateway_rss_before_mb": round(before["gateway"] / 1024, 1),
        "gateway_rss_after_mb": round(held["rss_kb"]["gateway"] / 1024, 1),
        "gateway_rss_per_stream_kb": (
            round((held["rss_kb"]["gateway"] - before["gateway"]) / opened, 2) if opened else None
        ),
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


async def history_rates(settings: BenchSettings) -> dict[str, Any]:
    from bench.history import projection_rates  # imports the test support it builds on

    rates = await projection_rates(settings.history_runs)
    return {
        "events_per_s": {rate.store: rate.events_per_s for rate in rates},
        "detail": [
            {
                "store": r.store,
                "events": r.events,
                "seconds": r.seconds,
                "events_per_s": r.events_per_s,
            }
            for r in rates
        ],
    }
