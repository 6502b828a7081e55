"""Read-after-finish consistency: a read waits, briefly, until history has recorded what its
caller may already have seen (ADR 0016).

- A read of one run names the run's latest stored `seq` (and that event's stream sequence): it
  is answered once the run is recorded with every event up to it (the run's own timeline says
  so). The store is read when the read arrives and again each time this process's writer has
  written the run; another history replica may have written it instead, which the consumer's
  ack floor tells (events are acknowledged once written): it is asked every `RECHECK_S`, once
  for every read waiting, so waiting reads never poll the store.
- Other reads name the event stream's latest sequence and the run index's latest revision: they
  are answered once the `history` consumer has acknowledged that far (its ack floor, shared by
  every replica) and this process's run index watcher has recorded that far.

Every wait is bounded: past it the read answers with what is recorded, and says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator

from flowstream_shared import subjects
from nats.js import JetStreamContext

from flowstream_history.store import ExecutionStore

# Another replica may have recorded the events: look again this often while waiting.
RECHECK_S = 0.1
# The consumer's state must come back well within a read's wait.
ASK_TIMEOUT_S = 1.0
# An answer about the consumer's state this fresh serves every read that asks.
FRESH_S = 0.05


class Recorded:
    """What the writer has just recorded, for the reads waiting on it."""

    def __init__(self) -> None:
        self._runs: dict[str, set[asyncio.Event]] = {}
        self._batches: set[asyncio.Event] = set()
        self.runs_seq = 0

    def wrote(self, run_ids: Iterable[str], runs_seq: int | None) -> None:
        if runs_seq is not None:
            self.runs_seq = max(self.runs_seq, runs_seq)
        for run_id in run_ids:
            for waiter in self._runs.get(run_id, ()):
                waiter.set()
        for waiter in self._batches:
            waiter.set()

    @contextlib.contextmanager
    def run_watch(self, run_id: str) -> Iterator[asyncio.Event]:
        waiter = asyncio.Event()
        self._runs.setdefault(run_id, set()).add(waiter)
        try:
            yield waiter
        finally:
            waiters = self._runs[run_id]
            waiters.discard(waiter)
            if not waiters:
                del self._runs[run_id]

    @contextlib.contextmanager
    def batch_watch(self) -> Iterator[asyncio.Event]:
        waiter = asyncio.Event()
        self._batches.add(waiter)
        try:
            yield waiter
        finally:
            self._batches.discard(waiter)


async def _until(
    check: Callable[[], Awaitable[bool]], wake: asyncio.Event, within_s: float
) -> bool:
    """True once `check` passes; woken by `wake`, or every RECHECK_S; False past `within_s`."""
    deadline = time.monotonic() + within_s
    while True:
        wake.clear()  # before the check: a write after it wakes the wait below
        if await check():
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), min(remaining, RECHECK_S))


class AckFloor:
    """How far the `history` consumer has acknowledged, asked of the server once at a time
    however many reads are waiting."""

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js
        self._floor = 0
        self._asked_at = -math.inf
        self._asking: asyncio.Task[None] | None = None

    async def reached(self, seq: int) -> bool:
        if self._floor < seq and time.monotonic() - self._asked_at > FRESH_S:
            if self._asking is None or self._asking.done():
                self._asking = asyncio.create_task(self._ask())
            await asyncio.shield(self._asking)
        return self._floor >= seq

    async def _ask(self) -> None:
        info = await self._js.consumer_info(
            subjects.EVENTS_STREAM, subjects.HISTORY_CONSUMER, timeout=ASK_TIMEOUT_S
        )
        self._asked_at = time.monotonic()
        floor = int(info.ack_floor.stream_seq)
        if info.num_pending == 0 and info.num_ack_pending == 0:
            # Everything delivered is acknowledged, and nothing is left to deliver.
            floor = max(floor, int(info.delivered.stream_seq))
        self._floor = max(self._floor, floor)


class ReadBarrier:
    def __init__(
        self, store: ExecutionStore, ack_floor: AckFloor, recorded: Recorded, within_s: float
    ) -> None:
        self._store = store
        self._ack_floor = ack_floor
        self._recorded = recorded
        self._within_s = within_s

    async def run(self, user_id: str, run_id: str, seq: int, events_seq: int | None) -> bool:
        """Whether the user's run is recorded with its events up to `seq` (the event at stream
        sequence `events_seq`), within the bound."""
        deadline = time.monotonic() + self._within_s
        with self._recorded.run_watch(run_id) as wrote:
            while True:
                wrote.clear()  # before the check: a write after it wakes the wait below
                if await self._store.applied(user_id, run_id, seq):
                    return True
                while not wrote.is_set():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    if events_seq is not None and await self._ack_floor.reached(events_seq):
                        return True  # written by some replica (or dead-lettered): done
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wrote.wait(), min(remaining, RECHECK_S))

    async def positions(self, events_seq: int | None, runs_seq: int | None) -> bool:
        """Whether the event stream up to `events_seq` and the run index up to `runs_seq` are
        recorded, within the bound."""

        async def check() -> bool:
            if runs_seq is not None and self._recorded.runs_seq < runs_seq:
                return False
            return events_seq is None or await self._ack_floor.reached(events_seq)

        with self._recorded.batch_watch() as wake:
            return await _until(check, wake, self._within_s)
