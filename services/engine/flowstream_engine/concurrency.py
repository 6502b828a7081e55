"""Concurrency limits, enforced when an engine picks a run up (ADR 0036).

A run subject to limits (its workflow's `max_concurrent_runs`, its concurrency key, its user's or
app key's limit) takes one slot of each before it executes. The slots live in KV
`flowstream_slots`, one key per limited scope, changed with compare-and-set: every engine counts
the same slots. A run that cannot have a slot keeps its command (acknowledgement deadline
renewed, so it is neither redelivered nor charged a delivery), gives its run slot back to the
engine, and joins the scope's waiting line; it gets the slot once the runs ahead of it have
theirs. One KV watch per process tells the waiters that a scope changed; a slot whose holder
stopped renewing it (a killed engine) expires and is taken by the next in line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from flowstream_shared.commands import RunCommand
from flowstream_shared.settings import ConcurrencySettings
from flowstream_shared.slots import Limit, SlotSet, command_limits, decide, released, renewed
from nats.aio.msg import Msg
from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from flowstream_engine.control import ControlRegistry
from flowstream_engine.metrics import EngineMetrics

log = logging.getLogger(__name__)

_CAS_ATTEMPTS = 50
# A waiter looks at its scope at least this often: for its cancel flag, and for slots that
# expired without a write anybody could have watched.
_MAX_NAP_S = 2.0


@dataclass
class _Known:
    revision: int | None  # None: the key does not exist
    slots: SlotSet
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class ConcurrencyGate:
    def __init__(
        self,
        kv: KeyValue,
        settings: ConcurrencySettings,
        control: ControlRegistry,
        metrics: EngineMetrics,
        *,
        hold_s: float,
        heartbeat_s: float,
    ) -> None:
        self._kv = kv
        self._settings = settings
        self._control = control
        self._metrics = metrics
        self._hold_s = hold_s  # a slot not renewed this long is free again
        self._heartbeat_s = heartbeat_s
        self._known: dict[str, _Known] = {}
        # A run's first decision (a slot, or its place in line) is taken in the order the
        # dispatcher took the commands: concurrent compare-and-set retries would otherwise let
        # a later run take a free slot before an earlier one had even joined the line.
        self._in_order = asyncio.Lock()

    def limits(self, command: RunCommand) -> list[Limit]:
        if command.cached_from is not None:
            return []  # a cached answer executes nothing
        return command_limits(command, self._settings)

    def observe(self, key: str, revision: int, value: bytes | None) -> None:
        """From the process's KV watch: a scope changed (on any engine)."""
        known = self._known.get(key)
        if known is None:
            return  # nobody here waits on it
        slots = SlotSet.model_validate_json(value) if value else SlotSet()
        if known.revision is None or revision > known.revision:
            known.revision, known.slots = (revision if value else None), slots
        known.changed.set()

    async def acquire(
        self, command: RunCommand, msg: Msg, limits: list[Limit], run_slot: RunSlot
    ) -> list[Limit]:
        """Take a slot of every limit, waiting in line where one is full; returns the limits
        held (all of them, or fewer when the run was cancelled while it waited)."""
        held: list[Limit] = []
        for limit in limits:
            if not await self._take(command, limit, msg, run_slot):
                break
            held.append(limit)
        return held

    async def _take(self, command: RunCommand, limit: Limit, msg: Msg, run_slot: RunSlot) -> bool:
        async with self._in_order:
            granted, position = await self._try(command, limit)
        if granted:
            return True
        log.info("run %s waits for %s (position %s)", command.run_id, limit.name, position)
        run_slot.give_back()  # waiting costs this engine no run slot
        self._metrics.waiting_runs.inc()
        beat = asyncio.create_task(_keep_unacknowledged(msg, self._heartbeat_s))
        try:
            while not granted:
                if self._control.is_cancelled(command.run_id):
                    await self._leave(command.run_id, limit)
                    await run_slot.take_again()
                    return False  # it ends `stopped` at once, executing nothing
                known = self._known[limit.key]
                known.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(known.changed.wait(), self._nap(known))
                granted, position = await self._try(command, limit)
        finally:
            beat.cancel()
            self._metrics.waiting_runs.dec()
        await run_slot.take_again()
        return True

    def _nap(self, known: _Known) -> float:
        expiry = known.slots.next_expiry()
        until_expiry = (expiry - time.time() + 0.05) if expiry is not None else _MAX_NAP_S
        return min(max(until_expiry, 0.05), _MAX_NAP_S)

    async def _try(self, command: RunCommand, limit: Limit) -> tuple[bool, int | None]:
        for _ in range(_CAS_ATTEMPTS):
            known = await self._current(limit.key)
            now = time.time()
            decision = decide(
                known.slots,
                command.run_id,
                limit=limit.limit,
                priority=command.priority,
                created_at=command.created_at,
                now=now,
                hold_s=self._hold_s,
                wait_s=self._hold_s * 3,
            )
            if not decision.changed or await self._write(limit.key, known, decision.slots):
                return decision.granted, decision.position
        raise RuntimeError(f"could not update {limit.key}: too much contention")

    async def _current(self, key: str) -> _Known:
        known = self._known.get(key)
        if known is not None and known.revision is not None:
            return known
        try:
            entry = await self._kv.get(key)
            revision = entry.revision
            slots = SlotSet.model_validate_json(entry.value) if entry.value else SlotSet()
        except (KeyNotFoundError, KeyDeletedError):
            revision, slots = None, SlotSet()
        if known is None:
            known = self._known[key] = _Known(revision, slots)
        else:
            known.revision, known.slots = revision, slots
        return known

    async def _write(self, key: str, known: _Known, slots: SlotSet) -> bool:
        payload = slots.model_dump_json().encode()
        try:
            if known.revision is None:
                revision = await self._kv.create(key, payload)
            else:
                revision = await self._kv.update(key, payload, last=known.revision)
        except (KeyWrongLastSequenceError, KeyDeletedError, KeyNotFoundError):
            known.revision = None  # stale: read it again
            return False
        except Exception as exc:  # `create` of an existing key is a plain API error
            log.debug("slot write on %s: %s", key, exc)
            known.revision = None
            return False
        known.revision, known.slots = revision, slots
        return True

    async def _change(self, key: str, change: Callable[[SlotSet], SlotSet]) -> None:
        for _ in range(_CAS_ATTEMPTS):
            known = await self._current(key)
            current = known.slots.pruned(time.time())
            updated = change(current)
            if updated == known.slots or await self._write(key, known, updated):
                return

    async def _leave(self, run_id: str, limit: Limit) -> None:
        await self._change(limit.key, lambda slots: released(slots, run_id))

    async def release(self, run_id: str, limits: list[Limit]) -> None:
        for limit in limits:
            with contextlib.suppress(Exception):
                await self._leave(run_id, limit)
            self._forget(limit.key)

    async def keep(self, run_id: str, limits: list[Limit]) -> None:
        """Renew the run's slots until cancelled (while it executes)."""
        while True:
            await asyncio.sleep(self._heartbeat_s)
            until = time.time() + self._hold_s

            def renew(slots: SlotSet, until: float = until) -> SlotSet:
                return renewed(slots, run_id, until)

            for limit in limits:
                with contextlib.suppress(Exception):
                    await self._change(limit.key, renew)

    def _forget(self, key: str) -> None:
        known = self._known.get(key)
        if known is not None and not known.slots.waiting:
            self._known.pop(key, None)


class RunSlot:
    """One of the engine's run slots, held by a picked-up command; given back while the run
    waits for a concurrency limit."""

    def __init__(self, slots: asyncio.Semaphore) -> None:
        self._slots = slots
        self.held = True

    def give_back(self) -> None:
        if self.held:
            self.held = False
            self._slots.release()

    async def take_again(self) -> None:
        if not self.held:
            await self._slots.acquire()
            self.held = True


async def _keep_unacknowledged(msg: Msg, every_s: float) -> None:
    """A waiting run's command is neither redelivered nor charged a delivery."""
    while True:
        await asyncio.sleep(every_s)
        with contextlib.suppress(Exception):
            await msg.in_progress()
