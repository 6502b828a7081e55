"""Real run events for history tests: the engine's executor with an in-memory event log."""

from __future__ import annotations

import time
import uuid
from typing import Any

from flowstream_engine.emitter import RunEmitter
from flowstream_engine.plan import plan_for
from flowstream_engine.run import RunExecutor
from flowstream_history.projection import Delivered, Owner, ProjectionBatch, plan
from flowstream_shared.commands import RunCommand, RunOwner, WorkflowSnapshot
from flowstream_shared.events import parse_event
from flowstream_shared.workflow import WorkflowDefinition


class _MemoryLog:
    def __init__(self) -> None:
        self.events: list[tuple[bytes, int]] = []

    def append(self, event: str, payload: bytes, seq: int) -> None:
        self.events.append((payload, seq))

    async def stored(self, through: int) -> None:
        return None


async def run_events(
    definition: dict[str, Any],
    inputs: dict[str, Any],
    workflow_id: str | None = None,
    user_id: str = "alice",
    end_user: str | None = None,
    created_at: float | None = None,
    version: int = 1,
) -> tuple[RunOwner, list[Delivered]]:
    """Execute a run in-process; return its owner entry and its events as history receives them
    (the bytes the engine published)."""
    workflow_id = workflow_id or f"wf-{uuid.uuid4().hex[:8]}"
    now = created_at or time.time()
    run_id = str(uuid.uuid4())
    command = RunCommand(
        run_id=run_id,
        task_id=str(uuid.uuid4()),
        workflow=WorkflowSnapshot(
            workflow_id=workflow_id,
            version=version,  # the engine caches plans per version: a new definition, a new one
            definition=WorkflowDefinition.model_validate(definition),
        ),
        inputs=inputs,
        user_id=user_id,
        end_user=end_user,
        created_at=now,
        deadline=time.time() + 30,
    )
    log = _MemoryLog()
    await RunExecutor(
        command, plan_for(command.workflow), RunEmitter(log, run_id, command.task_id)
    ).execute()
    owner = RunOwner(
        run_id=run_id,
        task_id=command.task_id,
        workflow_id=workflow_id,
        user_id=user_id,
        created_at=now,
        end_user=end_user,
    )
    return owner, [Delivered(workflow_id, parse_event(data), data) for data, _ in log.events]


def batch_of(events: list[Delivered], owners: list[RunOwner]) -> ProjectionBatch:
    """What the writer makes of these events when it knows these owners."""
    return plan(events, {o.run_id: Owner.of(o) for o in owners})
