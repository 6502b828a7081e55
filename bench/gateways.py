"""1 vs 3 gateways: throughput, and the NATS messages each gateway receives.

32 connections on the launcher's one gateway; then two more gateway processes join the stack and
the same 32 connections are spread unevenly over the three (one wrk per gateway, all at once), so
that a gateway receiving every event of the cluster would stand out: its messages per run of its
own would grow as its share of the runs shrinks. Each gateway's messages are read from NATS's
`/connz` (`out_msgs`, messages the server delivered to its connections) and its runs from its own
`flowstream_gateway_runs_submitted` counter, both after the stack has settled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass
from typing import Any

from flowstream_launcher.child_stack import ChildStack

from bench import load, replicas, wrk
from bench.cpu import CpuMeter
from bench.nats_monitor import NatsMonitor
from bench.procs import log

SPLIT = (16, 10, 6)  # 32 connections over three gateways, unevenly on purpose
SUBMITTED = "flowstream_gateway_runs_submitted_total"
# Messages per own run may differ this much between gateways and still count as "only its own";
# a gateway receiving every event would be off by its share of the runs (here 16/6 ≈ 2.7x).
OWN_EVENTS_TOLERANCE = 1.5


@dataclass(frozen=True)
class _Gateway:
    name: str
    base_url: str
    pid: int


async def _counts(gateways: list[_Gateway], monitor: NatsMonitor) -> dict[str, tuple[float, int]]:
    """Per gateway: runs submitted so far, messages received so far."""
    messages = await monitor.messages({g.name: g.pid for g in gateways})
    return {
        g.name: (await replicas.metric_total(g.base_url, SUBMITTED), messages[g.name].received)
        for g in gateways
    }


async def _spread(
    gateways: list[_Gateway],
    target_for: Callable[[str], wrk.Target],
    seconds: float,
    processes: Mapping[str, int],
    monitor: NatsMonitor,
    between: Callable[[], Awaitable[object]],
) -> dict[str, Any]:
    split = SPLIT if len(gateways) > 1 else (sum(SPLIT),)
    await between()
    before = await _counts(gateways, monitor)
    meter = CpuMeter(processes)
    meter.start()
    stats = await asyncio.gather(
        *(
            wrk.run(target_for(g.base_url), connections, seconds)
            for g, connections in zip(gateways, split, strict=True)
        )
    )
    cpu = meter.per_run(sum(s.runs for s in stats))
    await between()  # every event delivered before the counts are read
    after = await _counts(gateways, monitor)
    per_gateway: dict[str, Any] = {}
    for g, s in zip(gateways, stats, strict=True):
        runs = after[g.name][0] - before[g.name][0]
        received = after[g.name][1] - before[g.name][1]
        per_gateway[g.name] = {
            "connections": s.connections,
            "runs_per_s": s.runs_per_s,
            "runs_submitted": int(runs),
            "nats_messages_received": received,
            "messages_per_own_run": round(received / runs, 1) if runs else None,
            "p50_ms": s.p50_ms,
            "p99_ms": s.p99_ms,
            "errors": s.errors,
            "detail": asdict(s),
        }
    return {
        "runs_per_s": round(sum(s.runs_per_s for s in stats), 1),
        "gateways": per_gateway,
        "cpu": cpu,
    }


def _only_own_events(three: dict[str, Any], one: dict[str, Any]) -> bool | None:
    """Each of the three gateways receives about as many messages per run of its own as the
    single gateway did: none of them pays for the others' runs."""
    baseline = next(iter(one["gateways"].values()))["messages_per_own_run"]
    rates = [g["messages_per_own_run"] for g in three["gateways"].values()]
    if baseline is None or any(rate is None for rate in rates):
        return None
    return bool(max(rates) <= baseline * OWN_EVENTS_TOLERANCE)


async def one_vs_three(
    stack: ChildStack,
    target_for: Callable[[str], wrk.Target],
    seconds: float,
    processes: Mapping[str, int],
    monitor: NatsMonitor,
    between: Callable[[], Awaitable[object]],
) -> dict[str, Any]:
    first = _Gateway("gateway", stack.base_url, processes["gateway"])
    log(f"gateways: 32 connections on one gateway, {seconds:g} s")
    one = await _spread([first], target_for, seconds, processes, monitor, between)
    async with AsyncExitStack() as exits:
        extra = [
            await exits.enter_async_context(replicas.gateway(stack, name))
            for name in ("gateway-2", "gateway-3")
        ]
        gateways = [first, *(_Gateway(r.name, r.base_url, r.pid) for r in extra)]
        for replica in extra:
            await load.warm_up(target_for(replica.base_url))
        log(f"gateways: {'/'.join(map(str, SPLIT))} connections on three gateways, {seconds:g} s")
        all_processes = {**processes, **{r.name: r.pid for r in extra}}
        three = await _spread(gateways, target_for, seconds, all_processes, monitor, between)
    return {
        "runs_per_s_1_gateway": one["runs_per_s"],
        "runs_per_s_3_gateways": three["runs_per_s"],
        "speedup": (
            round(three["runs_per_s"] / one["runs_per_s"], 2) if one["runs_per_s"] else None
        ),
        "each_receives_only_its_own_events": _only_own_events(three, one),
        "1": one,
        "3": three,
    }
