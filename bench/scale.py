"""Scale figures on the main stack: a long chain, a second engine; history on its own.

- chain: the median latency of a 1,000-node chain (START, 998 plain TEMPLATE nodes, END) against
  the three-node run's at one connection, divided by the node count difference: the cost per
  node. The same difference of CPU per run, per process, gives each process's CPU per node.
- engines: 32 connections with the launcher's one engine, then with a second
  `python -m flowstream_engine` on the same NATS (the two share the durable consumer).
- history: `bench.history.projection_rates`, the projection rate per store.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx
from flowstream_launcher.child_stack import ChildStack

from bench import load, replicas, wrk
from bench.ceilings import record_frames
from bench.procs import log
from bench.settings import BenchSettings
from bench.workflows import CHAIN_NODES, chain, run_target, store

_EVENT = re.compile(rb'"event":"([a-z_]+)"')
CHAIN_LIMIT_S = 900.0  # a bound on the whole chain phase, far above its runs
CHAIN_RUN_TIMEOUT_S = 300.0
ENGINE_RUNS_STARTED = "flowstream_engine_runs_started_total"


def _per_node(chain_value: Any, three_node_value: Any) -> float | None:
    if not isinstance(chain_value, int | float) or not isinstance(three_node_value, int | float):
        return None
    return round((chain_value - three_node_value) / (CHAIN_NODES - 3) * 1000, 1)


async def chain_overhead(
    stack: ChildStack,
    token: str,
    client: httpx.AsyncClient,
    three_node: Mapping[str, Any],
    settings: BenchSettings,
    processes: Mapping[str, int],
) -> dict[str, Any]:
    """`three_node`: the one-connection figures of the three-node workflow, this run."""
    path = await store(client, chain())
    frames = await record_frames(client, path)  # warm-up, and the events a chain run makes
    stats = await load.measure(
        run_target(stack.base_url, path, token),
        1,
        CHAIN_LIMIT_S,
        processes,
        max_runs=settings.chain_runs,
        timeout_s=CHAIN_RUN_TIMEOUT_S,
    )
    chain_cpu = stats["cpu"]["ms_per_run"]
    three_cpu = three_node["cpu"]["ms_per_run"]
    return {
        "nodes": CHAIN_NODES,
        "events_per_run": frames.count(b"data: ") - 1,  # every frame but `[DONE]`
        "events_by_type": dict(Counter(m.decode() for m in _EVENT.findall(frames))),
        "p50_ms": stats["p50_ms"],
        "three_node_p50_ms": three_node["p50_ms"],
        "per_node_us": _per_node(stats["p50_ms"], three_node["p50_ms"]),
        "cpu_us_per_node": {
            name: _per_node(chain_cpu.get(name), three_cpu.get(name)) for name in chain_cpu
        },
        "detail": stats,
    }


async def two_engines(
    stack: ChildStack,
    target: wrk.Target,
    seconds: float,
    processes: Mapping[str, int],
    between: Callable[[], Awaitable[object]],
) -> dict[str, Any]:
    await between()
    log(f"engines: 32 connections with one engine, {seconds:g} s")
    one = await load.measure(target, 32, seconds, processes)
    async with replicas.engine(stack) as engine:
        await load.warm_up(target)  # the new engine's imports and caches (it takes some runs)
        await between()
        before = await replicas.metric_total(engine.base_url, ENGINE_RUNS_STARTED)
        log(f"engines: 32 connections with two engines, {seconds:g} s")
        two = await load.measure(target, 32, seconds, {**processes, engine.name: engine.pid})
        started = await replicas.metric_total(engine.base_url, ENGINE_RUNS_STARTED) - before
    return {
        "runs_per_s_1_engine": one["runs_per_s"],
        "runs_per_s_2_engines": two["runs_per_s"],
        "speedup": round(two["runs_per_s"] / one["runs_per_s"], 2) if one["runs_per_s"] else None,
        "second_engine_share": round(started / max(two["runs"], 1), 2),
        "detail": {"1": one, "2": two},
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
