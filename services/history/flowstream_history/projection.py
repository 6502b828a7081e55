"""Folds a batch of run events into the writes the execution store applies.

The rules that make writes idempotent and order-tolerant live here, once, for every store:
- a run's record is keyed by run id, a node attempt by its execution id (and retry index), a
  timeline entry by `(run_id, seq)`; applying the same event twice writes the same values;
- `workflow_finished` alone sets the terminal fields, and nothing changes a terminal status;
- `workflow_started` fills the start fields whenever it arrives, without touching the status;
- a run the run index announced is `pending` until any of its events is recorded (`running`);
- once a run has ended, no attempt of it is `running`: one still open then ends `stopped`;
- `last_seq` only grows.

A timeline entry is the event's bytes exactly as they were delivered, never re-encoded.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flowstream_shared.commands import RunOwner
from flowstream_shared.events import (
    EventName,
    NodeFinished,
    NodeRetry,
    NodeStarted,
    RunEventBase,
    RunStatus,
    WorkflowFinished,
    WorkflowPaused,
    WorkflowProgress,
    WorkflowResumed,
    WorkflowStarted,
)


@dataclass(frozen=True, slots=True)
class Owner:
    """Who a run belongs to. The user always; the rest when the run index (the gateway's entry)
    said so, which is the gateway's acceptance time to the microsecond."""

    user_id: str
    execution_name: str | None = None
    created_at: float | None = None
    end_user: str | None = None

    @classmethod
    def of(cls, entry: RunOwner) -> Owner:
        # What the run's `sys.user_id` will say: the end user it runs for, else the owner.
        end_user = entry.end_user or entry.user_id
        return cls(entry.user_id, entry.execution_name, entry.created_at, end_user)


@dataclass(frozen=True, slots=True)
class Delivered:
    """One event to record: its workflow (from its subject), the event, and its bytes."""

    workflow_id: str
    event: RunEventBase
    payload: bytes


@dataclass
class RunFacts:
    run_id: str
    workflow_id: str
    task_id: str
    owner: Owner | None = None
    max_seq: int = 0
    started: dict[str, Any] | None = None
    finished: dict[str, Any] | None = None
    # The latest pause/resume in the batch: (seq, status); applied only to a non-terminal run.
    pause_state: tuple[int, RunStatus] | None = None
    # The highest `workflow_progress` percent in the batch (progress never goes back).
    progress: float | None = None


@dataclass
class NodeFact:
    """One node attempt's fields as one event reports them; `None` means "not reported here"."""

    id: str
    run_id: str
    workflow_id: str
    node_id: str
    node_type: str
    title: str | None
    index: int | None
    attempt: int
    status: str
    final: bool  # node_finished / node_retry: its status and results win over node_started's
    inputs: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None
    error: str | None = None
    elapsed_ms: float | None = None
    created_at: float | None = None
    finished_at: float | None = None
    metrics: dict[str, float] | None = None


@dataclass
class TimelineFact:
    run_id: str
    seq: int
    event: str
    payload: str  # the event's JSON as it was delivered
    created_at: float | None


@dataclass
class ProjectionBatch:
    runs: dict[str, RunFacts] = field(default_factory=dict)
    nodes: list[NodeFact] = field(default_factory=list)
    timeline: list[TimelineFact] = field(default_factory=list)
    # Runs the run index announced: recorded `pending` unless already recorded.
    registrations: list[RunOwner] = field(default_factory=list)
    # The run index revision the registrations reach (stored with them).
    runs_seq: int | None = None

    @property
    def run_ids(self) -> list[str]:
        return list(self.runs)

    @property
    def touched_run_ids(self) -> list[str]:
        """Every run this batch writes to: by its events or by its registration."""
        return [*self.runs, *(r.run_id for r in self.registrations)]

    @property
    def ending_run_ids(self) -> list[str]:
        """Runs whose open attempts may have to end `stopped`: those that end in this batch and
        those that get node facts (a late `node_started` of a run that has already ended)."""
        found = {r.run_id for r in self.runs.values() if r.finished is not None}
        found.update(n.run_id for n in self.nodes)
        return sorted(found)


def _started_fact(workflow_id: str, event: NodeStarted) -> NodeFact:
    data = event.data
    return NodeFact(
        id=data.id,
        run_id=event.workflow_run_id,
        workflow_id=workflow_id,
        node_id=data.node_id,
        node_type=data.node_type,
        title=data.title,
        index=data.index,
        attempt=0,
        status="running",
        final=False,
        inputs=data.inputs,
        created_at=float(data.created_at),
    )


def _ended_fact(workflow_id: str, event: NodeFinished | NodeRetry) -> NodeFact:
    """A retried attempt is a record of its own; the final attempt keeps the execution id."""
    data = event.data
    attempt = event.data.retry_index if isinstance(event, NodeRetry) else 0
    return NodeFact(
        id=f"{data.id}#retry{attempt}" if isinstance(event, NodeRetry) else data.id,
        run_id=event.workflow_run_id,
        workflow_id=workflow_id,
        node_id=data.node_id,
        node_type=data.node_type,
        title=data.title,
        index=data.index,
        attempt=attempt,
        status=data.status.value,
        final=True,
        inputs=data.inputs,
        outputs=data.outputs,
        error=data.error,
        elapsed_ms=round(data.elapsed_time * 1000, 3),
        created_at=float(data.created_at),
        finished_at=float(data.finished_at),
        metrics=_metrics(data.execution_metadata) if isinstance(event, NodeFinished) else None,
    )


def _metrics(metadata: dict[str, Any] | None) -> dict[str, float] | None:
    found = (metadata or {}).get("metrics")
    if not isinstance(found, dict):
        return None
    numbers = {
        str(k): float(v)
        for k, v in found.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    return numbers or None


def plan(
    events: Iterable[Delivered],
    owners: Mapping[str, Owner] | None = None,
    registrations: Iterable[RunOwner] = (),
    runs_seq: int | None = None,
) -> ProjectionBatch:
    """`events` in the order they were delivered; `owners` by run id."""
    batch = ProjectionBatch(registrations=list(registrations), runs_seq=runs_seq)
    owners = owners or {}
    for delivered in events:
        event, workflow_id = delivered.event, delivered.workflow_id
        run = batch.runs.get(event.workflow_run_id)
        if run is None:
            run = batch.runs[event.workflow_run_id] = RunFacts(
                event.workflow_run_id,
                workflow_id,
                event.task_id,
                owners.get(event.workflow_run_id),
            )
        run.max_seq = max(run.max_seq, event.seq)
        created = getattr(event.data, "created_at", None)
        batch.timeline.append(
            TimelineFact(
                run.run_id,
                event.seq,
                event.event.value,
                delivered.payload.decode(),
                float(created) if created is not None else None,
            )
        )
        if isinstance(event, WorkflowStarted):
            inputs = dict(event.data.inputs)
            run.started = {
                "inputs": {k: v for k, v in inputs.items() if not k.startswith("sys.")},
                "end_user": inputs.get("sys.user_id"),
                "workflow_version": event.data.workflow_version,
                "created_at": float(event.data.created_at),
                "started_at": float(event.data.created_at),
            }
        elif isinstance(event, WorkflowFinished):
            data = event.data
            run.finished = {
                "status": data.status.value,
                "outputs": data.outputs,
                "error": data.error,
                "elapsed_ms": round(data.elapsed_time * 1000, 3),
                "total_steps": data.total_steps,
                "total_tokens": data.total_tokens,
                "finished_at": float(data.finished_at),
            }
            if data.status in (RunStatus.SUCCEEDED, RunStatus.PARTIAL_SUCCEEDED):
                run.progress = 100.0
        elif isinstance(event, WorkflowProgress):
            run.progress = max(run.progress or 0.0, event.data.percent)
        elif isinstance(event, WorkflowPaused | WorkflowResumed):
            if run.pause_state is None or event.seq > run.pause_state[0]:
                run.pause_state = (event.seq, event.data.status)
        elif isinstance(event, NodeStarted):
            batch.nodes.append(_started_fact(workflow_id, event))
        elif isinstance(event, NodeFinished | NodeRetry):
            batch.nodes.append(_ended_fact(workflow_id, event))
    return batch


TERMINAL = tuple(
    s.value
    for s in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.STOPPED, RunStatus.PARTIAL_SUCCEEDED)
)
PROJECTED_EVENTS = frozenset(e.value for e in EventName)


def dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)
