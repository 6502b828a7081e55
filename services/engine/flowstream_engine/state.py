"""A run's state folded from its own event log: another engine picks a run up where it stopped."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from flowstream_shared.events import (
    NodeFinished,
    NodeStarted,
    NodeStatus,
    RunEventBase,
    WorkflowFinished,
    WorkflowStarted,
)


@dataclass
class FinishedNode:
    node_id: str
    status: NodeStatus
    outputs: dict[str, Any]
    error: str | None


@dataclass
class RunState:
    last_seq: int = 0
    started_at: float | None = None
    inputs: dict[str, Any] | None = None
    node_index: int = 0
    total_tokens: int = 0
    # In the order they finished; replaying them in that order rebuilds the scheduler.
    finished_nodes: list[FinishedNode] = field(default_factory=list)
    finished: WorkflowFinished | None = None

    def apply(self, event: RunEventBase) -> None:
        if event.seq <= self.last_seq:
            return  # a duplicate: the log is already folded past it
        self.last_seq = event.seq
        if isinstance(event, WorkflowStarted):
            self.started_at = float(event.data.created_at)
            self.inputs = dict(event.data.inputs)
        elif isinstance(event, NodeStarted):
            self.node_index = max(self.node_index, event.data.index)
        elif isinstance(event, NodeFinished):
            data = event.data
            self.total_tokens += int((data.execution_metadata or {}).get("total_tokens", 0))
            self.finished_nodes.append(
                FinishedNode(data.node_id, data.status, dict(data.outputs or {}), data.error)
            )
        elif isinstance(event, WorkflowFinished):
            self.finished = event

    @classmethod
    def fold(cls, events: Iterable[RunEventBase]) -> RunState:
        state = cls()
        for event in sorted(events, key=lambda e: e.seq):
            state.apply(event)
        return state
