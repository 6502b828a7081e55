"""Waiting for the stack to be idle between phases.

A phase leaves work behind: history projecting the events it produced (a 1,000-node chain makes
thousands), an engine finishing stopped runs. Measuring the next phase while that backlog drains
would charge one phase's cost to the next, so every phase starts once the engine's queue and
history's consumer have nothing pending or unacknowledged. Read from NATS's monitoring port, so
the benchmark needs no NATS identity of its own.
"""

from __future__ import annotations

import asyncio
import time

from flowstream_shared import subjects

from bench.nats_monitor import NatsMonitor

POLL_S = 0.1


async def idle(monitor: NatsMonitor) -> bool:
    streams, consumers = await monitor.jetstream()
    engine = consumers.get((subjects.RUNS_STREAM, subjects.ENGINE_CONSUMER))
    history = consumers.get((subjects.EVENTS_STREAM, subjects.HISTORY_CONSUMER))
    events = streams.get(subjects.EVENTS_STREAM)
    if engine is None or history is None or events is None:
        return False  # not declared yet, or a leader is being elected
    return bool(
        engine["num_pending"] == 0
        and engine["num_ack_pending"] == 0
        and history["ack_floor"]["stream_seq"] >= events["state"]["last_seq"]
    )


async def settled(monitor: NatsMonitor, timeout_s: float = 180.0) -> float:
    """Wait until the stack is idle; return how long that took, in seconds."""
    started = time.perf_counter()
    async with asyncio.timeout(timeout_s):
        while True:
            if await idle(monitor):
                return time.perf_counter() - started
            await asyncio.sleep(POLL_S)
