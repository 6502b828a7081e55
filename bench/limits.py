"""The cost of queueing features on a run's hot path, in process, against a real nats-server.

`python -m bench.limits` measures, per run, what each feature adds (median and p95 over
`BENCH_LIMIT_RUNS` runs, sequentially, so a figure is one run's latency, not throughput):

- `submit_publish`: the baseline, one command published to the run stream (what every run pays);
- `pickup_top_band` / `pickup_bottom_band`: an engine's ask for its next command when it is in
  the highest band, and when nine empty bands are asked first (the worst case of the ordering);
- `ready_message`: the core message that wakes idle engines (no round trip);
- `rate_limit`: one fixed-window count (get + compare-and-set);
- `active_quota`: entering and leaving the concurrent-run quota (gateway + engine);
- `concurrency_slot`: taking and giving back one concurrency-limit slot (engine);
- `cache_lookup`: the gateway's result-cache read for a workflow with `config.cache`.

Features that are off cost nothing: no KV operation happens without a configured limit.
Prints a table and returns the figures (`measure()`), for the `make bench` harness to include.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
from flowstream_launcher.nats_server import free_port, start_nats_server
from flowstream_shared import subjects
from flowstream_shared.kv_sets import change_slots
from flowstream_shared.settings import NatsSettings
from flowstream_shared.slots import SlotSet, decide, released
from flowstream_shared.topology import ensure_band_consumers, ensure_topology
from nats.aio.client import Client
from nats.js.errors import KeyNotFoundError

RUNS = int(os.environ.get("BENCH_LIMIT_RUNS", "500"))
_NEXT = json.dumps({"batch": 1, "no_wait": True}).encode()


async def _timed(runs: int, step: Callable[[int], Awaitable[None]]) -> dict[str, float]:
    samples = []
    for i in range(runs):
        started = time.perf_counter()
        await step(i)
        samples.append((time.perf_counter() - started) * 1e6)
    samples.sort()
    return {
        "median_us": round(statistics.median(samples), 1),
        "p95_us": round(samples[int(len(samples) * 0.95) - 1], 1),
    }


async def _ask(nc: Client, inbox: Any, band: int) -> Any:
    subject = f"$JS.API.CONSUMER.MSG.NEXT.{subjects.RUNS_STREAM}.{subjects.band_consumer(band)}"
    await nc.publish(subject, _NEXT, reply=inbox.subject)
    return await inbox.next_msg(timeout=5)


async def _measure(nc: Client, runs: int) -> dict[str, dict[str, float]]:
    js = nc.jetstream()
    await ensure_topology(js, NatsSettings())
    await ensure_band_consumers(js, ack_wait=30, max_deliver=20)
    payload = b"x" * 2048  # about the size of a small workflow's command
    inboxes = {band: await nc.subscribe(nc.new_inbox()) for band in range(10)}
    figures: dict[str, dict[str, float]] = {}

    async def publish(band: int) -> None:
        run = str(uuid.uuid4())
        await js.publish(subjects.submit_subject(run, band, "bench"), payload)

    figures["submit_publish"] = await _timed(runs, lambda i: publish(9))

    async def take_top(i: int) -> None:
        msg = await _ask(nc, inboxes[9], 9)
        await msg.ack()

    figures["pickup_top_band"] = await _timed(runs, take_top)
    for _ in range(runs):
        await publish(0)

    async def take_bottom(i: int) -> None:
        for band in range(9, 0, -1):
            await _ask(nc, inboxes[band], band)  # empty: answers 404 at once
        msg = await _ask(nc, inboxes[0], 0)
        await msg.ack()

    figures["pickup_bottom_band"] = await _timed(runs, take_bottom)
    figures["ready_message"] = await _timed(
        runs, lambda i: nc.publish(subjects.ready_subject(0), b"")
    )

    rates = await js.key_value(subjects.RATES_BUCKET)

    async def count(i: int) -> None:
        key = f"rate.bench.{i // 50}"  # 50 requests per window, like a busy caller
        try:
            entry = await rates.get(key)
            await rates.update(key, str(int(entry.value or b"0") + 1).encode(), last=entry.revision)
        except KeyNotFoundError:
            await rates.create(key, b"1")

    figures["rate_limit"] = await _timed(runs, count)

    async def quota(i: int) -> None:
        run = str(i)

        def enter(slots: SlotSet) -> tuple[SlotSet, None]:
            return SlotSet(holders={**slots.holders, run: time.time() + 60}), None

        def leave(slots: SlotSet) -> tuple[SlotSet, None]:
            return released(slots, run), None

        await change_slots(rates, "active.bench", enter)
        await change_slots(rates, "active.bench", leave)

    figures["active_quota"] = await _timed(runs, quota)

    slots_kv = await js.key_value(subjects.SLOTS_BUCKET)

    async def slot(i: int) -> None:
        run = str(i)

        def take(slots: SlotSet) -> tuple[SlotSet, bool]:
            now = time.time()
            decision = decide(
                slots, run, limit=4, priority=0, created_at=now, now=now, hold_s=6, wait_s=18
            )
            return decision.slots, decision.granted

        def give_back(slots: SlotSet) -> tuple[SlotSet, None]:
            return released(slots, run), None

        await change_slots(slots_kv, "workflow.bench", take)
        await change_slots(slots_kv, "workflow.bench", give_back)

    figures["concurrency_slot"] = await _timed(runs, slot)

    results = await js.key_value(subjects.RESULTS_BUCKET)

    async def lookup(i: int) -> None:
        with contextlib.suppress(KeyNotFoundError):
            await results.get(f"bench.{i}")

    figures["cache_lookup"] = await _timed(runs, lookup)
    return figures


async def measure(runs: int = RUNS) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        server = await start_nats_server(free_port(), Path(tmp) / "nats")
        try:
            nc = await nats.connect(server.url)
            try:
                return await _measure(nc, runs)
            finally:
                await nc.close()
        finally:
            await server.stop()


def main() -> None:
    figures = asyncio.run(measure())
    print(f"{'step':<22}{'median µs':>12}{'p95 µs':>12}")
    for name, figure in figures.items():
        print(f"{name:<22}{figure['median_us']:>12}{figure['p95_us']:>12}")


if __name__ == "__main__":
    main()
