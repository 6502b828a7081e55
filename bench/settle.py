"""Waiting for the stack to be idle between phases.

A phase leaves work behind: history projecting the events it produced (a 1,000-node chain makes
thousands), an engine finishing stopped runs. Measuring the next phase while that backlog drains
would charge one phase's cost to the next, so every phase starts once the engine's queue and
history's consumer have nothing pending or unacknowledged.
"""

from __future__ import annotations

import asyncio
import time

import nats
from flowstream_shared import subjects

POLL_S = 0.1


async def settled(nats_url: str, timeout_s: float = 180.0) -> float:
    """Wait until the stack is idle; return how long that took, in seconds."""
    started = time.perf_counter()
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        async with asyncio.timeout(timeout_s):
            while True:
                # A work queue: every command an engine has finished is gone from the stream.
                queue = await js.stream_info(subjects.RUNS_STREAM)
                events = await js.stream_info(subjects.EVENTS_STREAM)
                history = await js.consumer_info(subjects.EVENTS_STREAM, subjects.HISTORY_CONSUMER)
                if (
                    queue.state.messages == 0
                    and history.ack_floor.stream_seq >= events.state.last_seq
                ):
                    return time.perf_counter() - started
                await asyncio.sleep(POLL_S)
    finally:
        await nc.close()
