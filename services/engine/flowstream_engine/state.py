"""A run's state folded from its own event log: another engine picks a run up where it stopped.

Nodes inside LOOP bodies are folded like any other; the scheduler uses them only to restore the
values of a LOOP that had finished (an unfinished LOOP runs again from its first iteration).
PARALLEL branches announced at the top level are remembered so a resumed run does not announce
them twice. Node executions that started but never finished were interrupted with their engine:
the resumed run reports each as stopped before running the node again. Whether the log ends
paused is remembered too, so a paused run picked up again neither announces its pause twice nor
resumes without saying so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from flowstream_shared.events import (
    NodeFinished,
    NodeStarted,
    NodeStartedData,
    NodeStatus,
    ParallelBranchFinished,
    ParallelBranchStarted,
    RunEventBase,
    WorkflowFinished,
    WorkflowPaused,
    WorkflowResumed,
    WorkflowStarted,
)
from flowstream_shared.workflow import BranchKey


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
    branches_started: set[BranchKey] = field(default_factory=set)
    branches_finished: set[BranchKey] = field(default_factory=set)
    # The log ends in `workflow_paused`: a resumed run does not announce the pause again.
    paused: bool = False
    # Node executions (by execution id) that started and have not finished.
    running: dict[str, NodeStartedData] = field(default_factory=dict)

    def apply(self, event: RunEventBase) -> None:
        if event.seq <= self.last_seq:
            return  # a duplicate: the log is already folded past it
        self.last_seq = event.seq
        if isinstance(event, WorkflowStarted):
            self.started_at = float(event.data.created_at)
            self.inputs = dict(event.data.inputs)
        elif isinstance(event, NodeStarted):
            self.node_index = max(self.node_index, event.data.index)
            self.running[event.data.id] = event.data
        elif isinstance(event, NodeFinished):
            data = event.data
            self.running.pop(data.id, None)
            self.total_tokens += int((data.execution_metadata or {}).get("total_tokens", 0))
            self.finished_nodes.append(
                FinishedNode(data.node_id, data.status, dict(data.outputs or {}), data.error)
            )
        elif isinstance(event, ParallelBranchStarted | ParallelBranchFinished):
            if event.data.loop_id is None:  # branches inside a LOOP body run again anyway
                key = (event.data.parallel_id, event.data.parallel_start_node_id)
                started = isinstance(event, ParallelBranchStarted)
                (self.branches_started if started else self.branches_finished).add(key)
        elif isinstance(event, WorkflowPaused | WorkflowResumed):
            self.paused = isinstance(event, WorkflowPaused)
        elif isinstance(event, WorkflowFinished):
            self.finished = event

    @classmethod
    def fold(cls, events: Iterable[RunEventBase]) -> RunState:
        state = cls()
        for event in sorted(events, key=lambda e: e.seq):
            state.apply(event)
        return state
