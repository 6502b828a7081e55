"""What happens to a command the dispatcher took, around the worker that executes it.

1. Concurrency limits: a slot of each, waiting in line for a full one (concurrency.py).
2. The worker executes the run (its claim, acknowledgement and hand-back rules are its own).
3. The slots are given back; once the run has ended, it leaves the caller's concurrent-run
   quota and, if it succeeded and asked for it, its result is cached (ADR 0037).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from flowstream_shared.commands import CacheEntry, RunCommand
from flowstream_shared.events import RunStatus, WorkflowFinishedData
from flowstream_shared.kv_sets import change_slots
from flowstream_shared.slots import SlotSet, released
from nats.aio.msg import Msg
from nats.js.kv import KeyValue

from flowstream_engine.concurrency import ConcurrencyGate, RunSlot
from flowstream_engine.worker import RunWorker

log = logging.getLogger(__name__)


class Pickup:
    def __init__(self, worker: RunWorker, gate: ConcurrencyGate, rates: KeyValue) -> None:
        self._worker = worker
        self._gate = gate
        self._rates = rates

    async def handle(self, command: RunCommand, msg: Msg, slot: RunSlot) -> None:
        limits = self._gate.limits(command)
        try:
            held = await self._gate.acquire(command, msg, limits, slot) if limits else []
        except asyncio.CancelledError:
            # Stopping while the run waits for a slot: hand it back now (another engine takes
            # its place in line) and leave the lines, so nobody waits on a run that left.
            with contextlib.suppress(Exception):
                await msg.nak()
            await self._gate.release(command.run_id, limits)
            raise
        keeping = asyncio.create_task(self._gate.keep(command.run_id, held)) if held else None
        try:
            outcome = await self._worker.handle(command, msg)
        finally:
            if keeping is not None:
                keeping.cancel()
            if held:
                await self._gate.release(command.run_id, held)
        if outcome == "done" and command.quota_keys:
            await self._leave_quota(command)

    async def _leave_quota(self, command: RunCommand) -> None:
        def leave(slots: SlotSet) -> tuple[SlotSet, None]:
            return released(slots, command.run_id), None

        for key in command.quota_keys:
            try:
                await change_slots(self._rates, key, leave)
            except Exception as exc:  # the entry expires at the run's deadline anyway
                log.warning("run %s: could not leave quota %s: %s", command.run_id, key, exc)


class ResultCache:
    def __init__(self, results: KeyValue) -> None:
        self._results = results

    async def store(self, command: RunCommand, data: WorkflowFinishedData) -> None:
        """The worker's hook: cache a run's result when the command asks, before the run's end
        is published (a client that sees it end and asks again gets the cached answer)."""
        if command.cache is None or command.cached_from is not None:
            return
        if data.status != RunStatus.SUCCEEDED:
            return
        now = time.time()
        entry = CacheEntry(
            run_id=command.run_id,
            workflow_id=command.workflow.workflow_id,
            user_id=command.user_id,
            created_at=now,
            expires_at=now + command.cache.ttl_s,
        )
        with contextlib.suppress(Exception):  # a lost entry costs one more execution
            await self._results.put(command.cache.key, entry.model_dump_json().encode())
