"""A result-cache hit (ADR 0037): the run answers by copying an earlier run's stored events.

The copy is a run of its own: its own run id, task id and node execution ids, its own `seq`
from 1, published through the same claimed, fenced run log as any run, so SSE, WebSocket,
direct NATS subscribers and history see it as they see every run. `workflow_started` and
`workflow_finished` say `cached: true` and name the run they copy. No node executes.
"""

from __future__ import annotations

import time
import uuid

from flowstream_shared import subjects
from flowstream_shared.commands import RunCommand
from flowstream_shared.event_log import read_messages
from flowstream_shared.events import (
    EventName,
    RunEventBase,
    RunStatus,
    WorkflowFinishedData,
    WorkflowStartedData,
    parse_event,
)
from flowstream_shared.subjects import RunAddress
from nats.aio.client import Client
from pydantic import BaseModel

from flowstream_engine.emitter import RunEmitter


async def read_original(nc: Client, command: RunCommand) -> list[RunEventBase] | None:
    """The earlier run's events, when all of them are still stored (it ended)."""
    assert command.cached_from is not None
    original = RunAddress.of(command.user_id, command.workflow.workflow_id, command.cached_from)
    events: list[RunEventBase] = [
        parse_event(message.data)
        async for message in read_messages(nc, subjects.EVENTS_STREAM, original.events_filter)
    ]
    events.sort(key=lambda event: event.seq)
    if not events or events[-1].event != EventName.WORKFLOW_FINISHED or events[0].seq != 1:
        return None  # gone, or it never ended (its engine died after writing the entry)
    finished = events[-1].data
    if not isinstance(finished, WorkflowFinishedData) or finished.status != RunStatus.SUCCEEDED:
        return None  # it failed after all (its end did not fit in an event)
    if [event.seq for event in events] != list(range(1, len(events) + 1)):
        return None
    return events


async def replay_cached(
    nc: Client, command: RunCommand, emitter: RunEmitter, skip: int
) -> WorkflowFinishedData | None:
    """Emit the copies (after the first `skip`, stored by an earlier attempt); None when the
    original's events are no longer all stored."""
    events = await read_original(nc, command)
    if events is None:
        return None
    started = time.time()
    finished: WorkflowFinishedData | None = None
    for event in events:
        data = _copied(command, event.data, started)
        if isinstance(data, WorkflowFinishedData):
            finished = data
        if event.seq > skip:
            emitter.emit(event.event, data)
    await emitter.flush()
    return finished


def _copied(command: RunCommand, data: BaseModel, started: float) -> BaseModel:
    assert command.cached_from is not None
    now = int(time.time())
    if isinstance(data, WorkflowStartedData):
        return data.model_copy(
            update={
                "id": command.run_id,
                "inputs": command.inputs,  # a custom cache key may ignore some inputs
                "created_at": int(started),
                "cached": True,
                "cached_from": command.cached_from,
            }
        )
    if isinstance(data, WorkflowFinishedData):
        return data.model_copy(
            update={
                "id": command.run_id,
                "created_at": int(started),
                "finished_at": now,
                "elapsed_time": round(time.time() - started, 6),
                "cached": True,
                "cached_from": command.cached_from,
            }
        )
    node_execution = getattr(data, "id", None)
    if isinstance(node_execution, str) and hasattr(data, "node_id"):
        # Node execution ids are unique per run: derive new ones, stable across attempts.
        copied = uuid.uuid5(uuid.UUID(command.run_id), node_execution)
        return data.model_copy(update={"id": str(copied)})
    return data
