"""Faults, injected into a running stack while the clients load it, each recorded with when it
struck and when the stack was whole again.

A fault that can interrupt an engine in the middle of a run (an engine or a NATS node going
away) marks the moments at which a node in flight may be executed again; the checks use them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from flowstream_shared import subjects

from chaos.cluster import meta_leader
from chaos.processes import ManagedProcess, Service, Stack, log

# How long a process stays down before it is started again.
DOWN_S = 2.0
LOCK_S = 8.0


@dataclass
class FaultRecord:
    kind: str
    target: str
    at: float  # when it struck (Unix time)
    restored_at: float | None = None
    # An engine may have been interrupted mid-run: nodes in flight at `at` may run again.
    interrupts_runs: bool = False
    detail: str = ""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


Fault = Callable[[Stack, int], Awaitable[FaultRecord]]


async def _signal_and_restart(
    stack: Stack, service: Service, sig: signal.Signals, kind: str, interrupts: bool
) -> FaultRecord:
    record = FaultRecord(
        kind, service.name, service.process.signal(sig), interrupts_runs=interrupts
    )
    if not await service.process.wait_exit(30.0):
        record.detail = "did not exit within 30 s of the signal; killed"
        service.process.signal(signal.SIGKILL)
    await asyncio.sleep(DOWN_S)
    await stack.restart(service)
    record.restored_at = time.time()
    return record


async def engine_kill(stack: Stack, step: int) -> FaultRecord:
    engine = stack.engines[step % len(stack.engines)]
    return await _signal_and_restart(stack, engine, signal.SIGKILL, "engine SIGKILL", True)


async def engine_term(stack: Stack, step: int) -> FaultRecord:
    engine = stack.engines[step % len(stack.engines)]
    return await _signal_and_restart(stack, engine, signal.SIGTERM, "engine SIGTERM", True)


async def gateway_kill(stack: Stack, step: int) -> FaultRecord:
    gateway = stack.gateways[step % len(stack.gateways)]
    return await _signal_and_restart(stack, gateway, signal.SIGKILL, "gateway SIGKILL", False)


async def gateway_term(stack: Stack, step: int) -> FaultRecord:
    gateway = stack.gateways[step % len(stack.gateways)]
    return await _signal_and_restart(stack, gateway, signal.SIGTERM, "gateway SIGTERM", False)


async def history_kill(stack: Stack, step: int) -> FaultRecord:
    return await _signal_and_restart(
        stack, stack.history[0], signal.SIGKILL, "history SIGKILL", False
    )


async def _nats_node_down(
    stack: Stack, name: str, sig: signal.Signals, kind: str, detail: str = ""
) -> FaultRecord:
    node = stack.nats_node(name)
    record = FaultRecord(kind, name, node.process.signal(sig), interrupts_runs=True, detail=detail)
    if not await node.process.wait_exit(30.0):
        record.detail += " did not exit within 30 s; killed"
        node.process.signal(signal.SIGKILL)
        await node.process.wait_exit(10.0)
    await asyncio.sleep(DOWN_S)
    await node.process.start()
    await stack.wait_nats({name})
    record.restored_at = time.time()
    return record


async def nats_kill(stack: Stack, step: int) -> FaultRecord:
    return await _nats_node_down(stack, stack.nats_nodes[0].name, signal.SIGKILL, "NATS SIGKILL")


async def nats_term(stack: Stack, step: int) -> FaultRecord:
    return await _nats_node_down(stack, stack.nats_nodes[0].name, signal.SIGTERM, "NATS SIGTERM")


async def stream_leader_kill(stack: Stack, step: int) -> FaultRecord:
    """SIGKILL the node leading the event stream (often the meta leader too)."""
    nc = await stack.connect()
    try:
        info = await nc.jetstream().stream_info(subjects.EVENTS_STREAM)
        leader = info.cluster.leader if info.cluster is not None else None
    finally:
        await nc.close()
    if leader is None:
        raise RuntimeError("the event stream reports no leader")
    meta = await meta_leader(stack.topology, {n.name for n in stack.nats_nodes})
    detail = f"event stream leader; meta leader was {meta}"
    return await _nats_node_down(stack, leader, signal.SIGKILL, "stream leader SIGKILL", detail)


async def meta_leader_kill(stack: Stack, step: int) -> FaultRecord:
    up = {node.name for node in stack.nats_nodes if node.process.running}
    leader = await meta_leader(stack.topology, up)
    if leader is None:
        raise RuntimeError("no meta leader")
    return await _nats_node_down(stack, leader, signal.SIGKILL, "meta leader SIGKILL")


async def sqlite_lock(stack: Stack, step: int) -> FaultRecord:
    """Another process holds the history database in an exclusive transaction."""
    path = stack.work_dir / "data" / "history.sqlite3"
    locker = ManagedProcess(
        "sqlite-lock",
        [sys.executable, "-m", "chaos.sqlite_lock", str(path), str(LOCK_S)],
        os.environ,
        stack.work_dir / "sqlite-lock.log",
    )
    record = FaultRecord("SQLite locked", path.name, time.time(), detail=f"{LOCK_S:g} s")
    await locker.start()
    if not await locker.wait_exit(LOCK_S + 60):
        await locker.stop()
        record.detail += "; the lock was never taken"
    record.restored_at = time.time()
    return record


async def ferretdb_stop(stack: Stack, step: int) -> FaultRecord:
    record = FaultRecord("FerretDB stopped", "ferretdb", await stack.stop_ferretdb())
    await asyncio.sleep(LOCK_S)
    await stack.start_ferretdb()
    record.restored_at = time.time()
    return record


async def inject(
    stack: Stack, faults: list[Fault], every_s: float, until: asyncio.Event
) -> list[FaultRecord]:
    """Strike the faults in turn, one every `every_s`, until `until` is set."""
    records: list[FaultRecord] = []
    step = 0
    while faults and not until.is_set():
        try:
            await asyncio.wait_for(until.wait(), every_s)
            break
        except TimeoutError:
            pass
        fault = faults[step % len(faults)]
        try:
            record = await fault(stack, step // len(faults))
        except Exception as exc:
            log(f"fault {fault.__name__} failed: {exc}")
            records.append(FaultRecord(fault.__name__, "?", time.time(), detail=f"failed: {exc}"))
        else:
            log(f"fault: {record.kind} on {record.target} ({record.detail or 'ok'})")
            records.append(record)
        step += 1
    return records
