"""The writer: takes delivered events and run index entries, records them in batches.

Events arrive one by one from the push consumer and are buffered; one writer task takes whatever
has accumulated as one batch (so batches grow with load and an idle event is written at once):
1. each message is checked (`intake`): what cannot be recorded is dead-lettered and acknowledged;
2. the owners of the batch's runs are found (`owners`): an event whose owner is not known yet is
   put back with a delay, and dead-lettered at its last delivery;
3. the rest is written as one batch, then acknowledged, message by message (explicit acks:
   several replicas share the consumer, and an "ack all" would acknowledge another replica's
   unwritten events). The acks of a batch cost no round trip: they are queued on the connection
   back to back and leave in one write.
While the database is unreachable the batch is kept, its acknowledgement deadline extended, and
the write retried with exponential backoff; the consumer's `max_ack_pending` stops the server
from sending more meanwhile. Reads waiting for a run are woken after each batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from flowstream_shared.commands import RunOwner
from nats.aio.msg import Msg

from flowstream_history.consistency import Recorded
from flowstream_history.dead_letters import DeadLetters
from flowstream_history.intake import (
    Candidate,
    Reason,
    Rejected,
    claimed_owners,
    inspect,
    owner_mismatch,
)
from flowstream_history.owners import OwnerLookup
from flowstream_history.projection import Owner, plan
from flowstream_history.settings import HistorySettings
from flowstream_history.store import ExecutionStore, StoreUnavailable
from flowstream_history.telemetry import HistoryMetrics, RunTraces

log = logging.getLogger(__name__)

T = TypeVar("T")
OWNER_RETRY_MAX_S = 30.0
# Run index entries waiting for the writer before the watcher stops taking more.
REGISTRATIONS_HELD = 10_000


class Recorder:
    def __init__(
        self,
        store: ExecutionStore,
        owners: OwnerLookup,
        dead_letters: DeadLetters,
        settings: HistorySettings,
        metrics: HistoryMetrics,
        recorded: Recorded,
        traces: RunTraces | None = None,
    ) -> None:
        self._store = store
        self._owners = owners
        self._dead_letters = dead_letters
        self._settings = settings
        self._metrics = metrics
        self._recorded = recorded
        self._traces = traces or RunTraces()
        self._messages: list[Msg] = []
        self._registrations: list[tuple[RunOwner | None, int]] = []
        self._room = asyncio.Event()
        self._room.set()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._keep_alive: asyncio.Task[None] | None = None
        self._hand: list[Msg] = []  # the messages of the batch being recorded
        self._last_progress = time.monotonic()
        self._failing = False
        self._stall_reported = False
        # Stream sequences of messages put back to wait for their owner → when they are due.
        self._waiting: dict[int, float] = {}

    # Intake, called from the subscriptions.

    def deliver(self, message: Msg) -> None:
        if not self._messages and not self._hand:
            self._last_progress = time.monotonic()  # idle until now: not a stall
        self._messages.append(message)
        self._wakeup.set()

    async def register(self, entry: RunOwner | None, revision: int) -> None:
        """A run index entry (None: a deletion, which only moves the position on)."""
        await self._room.wait()
        self._registrations.append((entry, revision))
        if len(self._registrations) >= REGISTRATIONS_HELD:
            self._room.clear()
        self._wakeup.set()

    # Lifecycle and health.

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="history-writer")
        self._keep_alive = asyncio.create_task(self._keep_held_alive(), name="history-keep-alive")

    async def stop(self) -> None:
        """Stop now. Every message not acknowledged yet (buffered, or in a batch cut short: its
        writes are idempotent) goes back to the server at once, for another replica or the
        next start to record."""
        hand = self._hand
        for task in (self._task, self._keep_alive):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._put_back([*hand, *self._messages], 0)
        self._messages.clear()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def stalled_for(self) -> float:
        """Seconds events have been held without a successful write (0: none held)."""
        if not self.running:
            return math.inf
        if not self._messages and not self._hand:
            return 0.0
        return time.monotonic() - self._last_progress

    # The writer.

    async def _run(self) -> None:
        max_batch = self._settings.history_batch_size
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._messages or self._registrations:
                messages = self._messages[:max_batch]
                del self._messages[:max_batch]
                registrations = self._registrations[:max_batch]
                del self._registrations[:max_batch]
                if len(self._registrations) < REGISTRATIONS_HELD:
                    self._room.set()
                self._hand = messages
                try:
                    await self._record(messages, registrations)
                except Exception:  # never let the writer die: the messages come back later
                    log.exception("recording a batch failed; its events come back later")
                    await self._put_back(messages, self._settings.history_retry_max_s)
                finally:
                    self._hand = []
                    self._last_progress = time.monotonic()

    async def _keep_held_alive(self) -> None:
        """Messages waiting in the buffer (under load) or in a batch being retried (the store
        down) are not redelivered meanwhile: their deadline is extended every third of it."""
        while True:
            await asyncio.sleep(self._settings.history_ack_wait_s / 3)
            for message in [*self._hand, *self._messages]:
                with contextlib.suppress(Exception):  # already acknowledged, or disconnected
                    await message.in_progress()

    async def _record(
        self, messages: list[Msg], registrations: list[tuple[RunOwner | None, int]]
    ) -> None:
        self._forget_waiting(messages)
        entries = [entry for entry, _ in registrations if entry is not None]
        for entry in entries:  # events of a run registered in this batch find it here
            self._owners.remember(entry.run_id, Owner.of(entry))
        candidates: list[Candidate] = []
        rejected: list[Rejected] = []
        for message in messages:
            found = inspect(message)
            if isinstance(found, Candidate):
                candidates.append(found)
            else:
                rejected.append(found)
        run_ids = list(dict.fromkeys(c.run_id for c in candidates))
        owners = (
            await self._until_done(lambda: self._owners.owners(run_ids, claimed_owners(candidates)))
            if run_ids
            else {}
        )
        accepted: list[Candidate] = []
        ownerless: list[Candidate] = []
        for candidate in candidates:
            owner = owners.get(candidate.run_id)
            if owner is None:
                ownerless.append(candidate)
            elif (mismatch := owner_mismatch(candidate, owner)) is not None:
                rejected.append(mismatch)
            else:
                accepted.append(candidate)
                self._traces.saw(candidate.run_id, candidate.message.headers)
        rejected.extend(await self._wait_for_owners(ownerless))
        if rejected:
            await self._dead_letter(rejected)
        batch = plan(
            (c.delivered() for c in accepted),
            {c.run_id: owners[c.run_id] for c in accepted},
            entries,
            max((revision for _, revision in registrations), default=None),
        )
        if batch.timeline or batch.registrations or batch.runs_seq is not None:
            held = [c.message for c in accepted]
            await self._until_done(lambda: self._store.apply(batch))
            for message in held:
                await message.ack()
            if held:
                self._metrics.recorded(len(held))
        self._recorded.wrote(batch.touched_run_ids, batch.runs_seq)

    async def _wait_for_owners(self, ownerless: Sequence[Candidate]) -> list[Rejected]:
        """Put each back with a growing delay; at its last delivery, or when too many wait
        already, it is rejected instead."""
        rejected: list[Rejected] = []
        now = time.monotonic()
        for candidate in ownerless:
            metadata = candidate.message.metadata
            deliveries = metadata.num_delivered
            if (
                deliveries >= self._settings.history_owner_max_deliveries
                or self._waiting_count(now) >= self._settings.history_owner_waiting_max
            ):
                rejected.append(
                    Rejected(
                        candidate.message,
                        Reason.OWNER_UNKNOWN,
                        f"no owner found for run {candidate.run_id} in {deliveries} deliveries",
                    )
                )
                continue
            delay = min(
                self._settings.history_owner_retry_s * 2 ** (deliveries - 1), OWNER_RETRY_MAX_S
            )
            await candidate.message.nak(delay=delay)
            due = now + delay + self._settings.history_ack_wait_s
            self._waiting[metadata.sequence.stream] = due
            self._metrics.owner_waits.inc()
        return rejected

    def _waiting_count(self, now: float) -> int:
        if len(self._waiting) >= self._settings.history_owner_waiting_max:
            for seq in [s for s, due in self._waiting.items() if due < now]:
                del self._waiting[seq]  # came back to another replica, or never will
        return len(self._waiting)

    def _forget_waiting(self, messages: list[Msg]) -> None:
        if self._waiting:
            for message in messages:
                self._waiting.pop(message.metadata.sequence.stream, None)

    async def _dead_letter(self, rejected: list[Rejected]) -> None:
        stored = await self._dead_letters.store(rejected)
        for item, new in stored:
            await item.message.ack()
            if new:  # a message delivered again is counted once
                self._metrics.dead_letters.labels(item.reason.value).inc()
        if len(stored) < len(rejected):
            kept = {id(item) for item, _ in stored}
            await self._put_back(
                [r.message for r in rejected if id(r) not in kept],
                self._settings.history_retry_max_s,
            )

    async def _put_back(self, messages: Sequence[Msg], delay: float) -> None:
        for message in messages:
            # One already acknowledged refuses (nats-py) or is ignored (the server).
            with contextlib.suppress(Exception):
                await message.nak(delay=delay or None)

    async def _until_done(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """`attempt` until it succeeds (the messages held meanwhile are kept alive)."""
        delay = 0.1
        while True:
            try:
                result = await attempt()
            except Exception as exc:  # a writer that gives up stops all recording: retry
                if isinstance(exc, StoreUnavailable):
                    log.warning("execution store unavailable (%s); retrying in %.1fs", exc, delay)
                else:
                    log.exception("writing a batch failed unexpectedly; retrying in %.1fs", delay)
                self._failing = True
                self._report_stall()
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._settings.history_retry_max_s)
                continue
            if self._failing:
                self._failing = False
                log.warning("execution store available again")
            if self._stall_reported:
                self._stall_reported = False
                log.warning("history recovered: recording again")
            return result

    def _report_stall(self) -> None:
        stalled = self.stalled_for()
        if stalled > self._settings.history_stall_s and not self._stall_reported:
            self._stall_reported = True
            log.warning("history stalled: events held %.1fs without a successful write", stalled)
