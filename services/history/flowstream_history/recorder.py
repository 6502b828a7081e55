"""Applies event batches to the store, and holds on while the store is down.

Events arrive one by one from a push consumer and are buffered; one writer task writes whatever
has accumulated as one batch (so batches grow with load and an idle event is written at once),
then acknowledges each of its messages. While the database is unreachable the batch is kept, its
acknowledgement deadline extended, and the write retried with exponential backoff; the consumer's
`max_ack_pending` stops the server from sending more meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from flowstream_shared.events import RunEventBase

from flowstream_history.owners import OwnerLookup
from flowstream_history.projection import plan
from flowstream_history.store import ExecutionStore, StoreUnavailable

log = logging.getLogger(__name__)


class Recorder:
    def __init__(
        self,
        store: ExecutionStore,
        owners: OwnerLookup,
        retry_max_s: float,
        on_recorded: Callable[[int], None] = lambda n: None,
    ) -> None:
        self._store = store
        self._owners = owners
        self._retry_max_s = retry_max_s
        self._on_recorded = on_recorded

    async def record(
        self, events: list[tuple[str, RunEventBase]], keep_alive: Callable[[], Awaitable[Any]]
    ) -> None:
        batch = plan(events)
        owners = await self._owners.owners(batch.run_ids)
        delay = 0.1
        while True:
            try:
                await self._store.apply(batch, owners)
            except Exception as exc:  # a writer that dies stops all recording: always retry
                if isinstance(exc, StoreUnavailable):
                    log.warning("execution store unavailable (%s); retrying in %.1fs", exc, delay)
                else:
                    log.exception("writing a batch failed unexpectedly; retrying in %.1fs", delay)
                await keep_alive()
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max_s)
                continue
            self._on_recorded(len(events))
            return


class BatchingRecorder:
    """Buffers delivered events and feeds them to a Recorder in batches, acking after each write."""

    def __init__(self, recorder: Recorder, max_batch: int) -> None:
        self._recorder = recorder
        self._max_batch = max_batch
        self._pending: list[tuple[str, RunEventBase, Any]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="history-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def add(self, workflow_id: str, event: RunEventBase, message: Any) -> None:
        self._pending.append((workflow_id, event, message))
        self._wakeup.set()

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                messages = [m for _, _, m in batch]

                async def keep_alive(messages: list[Any] = messages) -> None:
                    for message in messages:
                        await message.in_progress()

                await self._recorder.record([(w, e) for w, e, _ in batch], keep_alive)
                for message in messages:
                    await message.ack()
