"""Publishes run events with a gap-free `seq`, pipelined rather than one round trip per event.

:meth:`RunEmitter.emit` is synchronous: numbering an event and queueing it happen together, so a
cancelled node can never leave a gap in `seq`. One :class:`EventLogWriter` per process drains the
queue with `publish_async` (NATS keeps the order of one connection) and collects acknowledgements;
:meth:`RunEmitter.flush` waits until every event of the run is stored. An event whose
acknowledgement fails is published again with the same `Nats-Msg-Id`, so the stream stores it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any, Protocol

from flowstream_shared import subjects
from flowstream_shared.events import EVENT_TYPES, EventName, RunEventBase
from pydantic import BaseModel

log = logging.getLogger(__name__)

MSG_ID_HEADER = "Nats-Msg-Id"


class EventLog(Protocol):
    def submit(self, subject: str, payload: bytes, msg_id: str) -> asyncio.Future[None]:
        """Queue one event; the future completes when the event log has stored it."""
        ...


class EventLogWriter:
    """The process's single writer to `FLOWSTREAM_EVENTS`."""

    def __init__(self, js: Any, retries: int = 5) -> None:
        self._js = js
        self._retries = retries
        self._queue: deque[tuple[str, bytes, str, asyncio.Future[None]]] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._retries_in_flight: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._drain(), name="event-log-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def submit(self, subject: str, payload: bytes, msg_id: str) -> asyncio.Future[None]:
        stored: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((subject, payload, msg_id, stored))
        self._wakeup.set()
        return stored

    async def _drain(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                subject, payload, msg_id, stored = self._queue.popleft()
                try:
                    ack = await self._js.publish_async(
                        subject,
                        payload,
                        headers={MSG_ID_HEADER: msg_id},
                        stream=subjects.EVENTS_STREAM,
                    )
                except Exception as exc:
                    log.warning("publishing event %s failed (%s); retrying", msg_id, exc)
                    self._retry(subject, payload, msg_id, stored)
                    continue
                ack.add_done_callback(
                    lambda done, s=subject, p=payload, m=msg_id, f=stored: self._on_ack(
                        done, s, p, m, f
                    )
                )

    def _on_ack(
        self,
        ack: asyncio.Future[Any],
        subject: str,
        payload: bytes,
        msg_id: str,
        stored: asyncio.Future[None],
    ) -> None:
        if ack.cancelled() or ack.exception() is not None:
            self._retry(subject, payload, msg_id, stored)
        elif not stored.done():
            stored.set_result(None)

    def _retry(
        self, subject: str, payload: bytes, msg_id: str, stored: asyncio.Future[None]
    ) -> None:
        task = asyncio.ensure_future(self._republish(subject, payload, msg_id, stored))
        self._retries_in_flight.add(task)
        task.add_done_callback(self._retries_in_flight.discard)

    async def _republish(
        self, subject: str, payload: bytes, msg_id: str, stored: asyncio.Future[None]
    ) -> None:
        delay = 0.05
        for attempt in range(self._retries):
            try:
                await self._js.publish(
                    subject, payload, headers={MSG_ID_HEADER: msg_id}, stream=subjects.EVENTS_STREAM
                )
            except Exception as exc:
                if attempt == self._retries - 1:
                    if not stored.done():
                        stored.set_exception(exc)
                    return
                await asyncio.sleep(delay)
                delay *= 2
            else:
                if not stored.done():
                    stored.set_result(None)
                return


class RunEmitter:
    """Builds, numbers and queues the events of one run."""

    def __init__(
        self, log: EventLog, workflow_id: str, run_id: str, task_id: str, last_seq: int = 0
    ) -> None:
        self._log = log
        self._stored: list[asyncio.Future[None]] = []
        self.workflow_id = workflow_id
        self.run_id = run_id
        self.task_id = task_id
        self.seq = last_seq

    def emit(self, event: EventName, data: BaseModel) -> RunEventBase:
        self.seq += 1
        # `data` is a validated model and the rest is ours: constructing without validating again
        # saves a tenth of an event's cost.
        model = EVENT_TYPES[event].model_construct(
            event=event, workflow_run_id=self.run_id, task_id=self.task_id, data=data, seq=self.seq
        )
        self._stored.append(
            self._log.submit(
                subjects.event_subject(self.workflow_id, self.run_id, event.value),
                model.model_dump_json().encode(),
                subjects.event_msg_id(self.run_id, self.seq),
            )
        )
        return model

    async def flush(self) -> None:
        """Wait until every event emitted so far is stored; raise if one could not be."""
        stored, self._stored = self._stored, []
        await asyncio.gather(*stored)
