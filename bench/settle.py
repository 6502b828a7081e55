"""Waiting for the stack to be idle between phases.

A phase leaves work behind: history projecting the events it produced (a 1,000-node chain makes
thousands), an engine finishing stopped runs. Measuring the next phase while that backlog drains
would charge one phase's cost to the next, so every phase starts once the run queue is empty (a
command leaves it when its run has ended) and history has acknowledged every event. The queue is
one work-queue stream whatever a command's priority band (each band is a consumer of it,
`engine-p0` … `engine-p9`), so its message count covers every band. Read from NATS's monitoring
port, so the benchmark needs no NATS identity of its own.
"""

from __future__ import annotations

import asyncio
import time

from flowstream_shared import subjects

from bench.nats_monitor import NatsMonitor

POLL_S = 0.1


async def idle(monitor: NatsMonitor) -> bool:
    streams, consumers = await monitor.jetstream()
    queue = streams.get(subjects.RUNS_STREAM)
    events = streams.get(subjects.EVENTS_STREAM)
    history = consumers.get((subjects.EVENTS_STREAM, subjects.HISTORY_CONSUMER))
    if queue is None or events is None or history is None:
        return False  # not declared yet, or a leader is being elected
    # A work queue: a command leaves the stream when an engine has finished its run, in any band.
    return bool(
        queue["state"]["messages"] == 0
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
