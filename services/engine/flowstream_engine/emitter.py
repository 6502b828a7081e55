"""Builds and numbers a run's events; the run's event sink stores them.

:meth:`RunEmitter.emit` is synchronous: numbering an event and queueing it happen together, so a
cancelled node can never leave a gap in `seq`. An event too large for the event log is refused
before it gets a number (:class:`EventTooLarge`), so the caller can send a smaller one instead.
"""

from __future__ import annotations

import json
from typing import Protocol

from flowstream_shared.events import EVENT_TYPES, EventName, RunEventBase
from pydantic import BaseModel

# NATS's default max_payload is 1 MiB; headers and the reply subject need room too.
DEFAULT_MAX_EVENT_BYTES = (1 << 20) - (16 << 10)


class EventSink(Protocol):
    """Where one run's events go, in `seq` order."""

    def append(self, event: str, payload: bytes, seq: int) -> None:
        """Queue an event; never blocks."""
        ...

    async def stored(self, through: int) -> None:
        """Wait until every event up to `through` is stored; raise if it cannot be."""
        ...


class EventTooLarge(ValueError):
    def __init__(self, event: str, size: int, limit: int) -> None:
        super().__init__(
            f"the {event} event would be {size} bytes, over the event limit of {limit} bytes"
        )
        self.size = size
        self.limit = limit


class RunEmitter:
    """Builds, numbers and queues the events of one run."""

    def __init__(
        self,
        sink: EventSink,
        run_id: str,
        task_id: str,
        last_seq: int = 0,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        self._sink = sink
        self.run_id = run_id
        self.task_id = task_id
        self.seq = last_seq
        self._max_event_bytes = max_event_bytes
        self._prefixes: dict[EventName, bytes] = {}

    def emit(self, event: EventName, data: BaseModel) -> int:
        """Number and queue one event; answer its `seq`."""
        seq = self.seq + 1
        # The envelope is ours and fixed: framing the data's JSON directly costs a third of
        # building an event model and serialising it (the bytes are the same).
        prefix = self._prefixes.get(event)
        if prefix is None:
            prefix = self._prefixes[event] = (
                b'{"event":"%s","workflow_run_id":%s,"task_id":%s,"data":'
                % (
                    event.value.encode(),
                    json.dumps(self.run_id).encode(),
                    json.dumps(self.task_id).encode(),
                )
            )
        payload = b'%s%s,"seq":%d}' % (prefix, data.__pydantic_serializer__.to_json(data), seq)
        if len(payload) > self._max_event_bytes:
            raise EventTooLarge(event.value, len(payload), self._max_event_bytes)
        self.seq = seq
        self._sink.append(event.value, payload, seq)
        return seq

    def model(self, event: EventName, data: BaseModel, seq: int) -> RunEventBase:
        """The event as a model, for whoever needs more than its bytes (hooks)."""
        return EVENT_TYPES[event].model_construct(
            event=event, workflow_run_id=self.run_id, task_id=self.task_id, data=data, seq=seq
        )

    async def flush(self) -> None:
        """Wait until every event emitted so far is stored; raise if one could not be."""
        await self._sink.stored(self.seq)
