"""One scope of a run: the top level, or one iteration of a LOOP body.

Scheduling is dead-path elimination over the scope's DAG: a node runs once every incoming edge
is resolved and at least one was taken; a node none of whose edges was taken is skipped, and so
are the nodes only it leads to. An untaken CONDITION branch therefore never starts, and neither
do a failed node's normal successors when its `on_error` names a node.

Stopping a scope (a halt of the run, a failure inside a LOOP body, a PARALLEL race lost) starts
nothing new and interrupts what is running: interruptible nodes at once (every node, for the
deadline), LOOPs by stopping their current iteration. A scope's coroutine is cancelled only when
the engine shuts down or when its LOOP node times out.

Pausing the run holds the top-level scope at its node boundaries: nodes that become ready are
kept, not started, until the run resumes (or halts: then they never start). Running nodes,
LOOPs with their bodies included, are not interrupted.
"""

from __future__ import annotations

import asyncio
import logging
from collections import ChainMap, deque
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from flowstream_shared.events import NodeStatus
from flowstream_shared.expressions import ExpressionError, compile_condition
from flowstream_shared.workflow import ConnectionType, NodeType

from flowstream_engine.nodes.base import NodeResult
from flowstream_engine.plan import Edge, PlannedNode, Scope
from flowstream_engine.run.branches import BranchTracker
from flowstream_engine.run.common import LoopFrame, Outcome, StopReason
from flowstream_engine.run.loop import LoopRunner
from flowstream_engine.run.node import NodeRun
from flowstream_engine.state import FinishedNode

if TYPE_CHECKING:
    from flowstream_engine.run.executor import RunExecutor

log = logging.getLogger(__name__)

Ready = tuple[str, str | None]  # (node id, the predecessor whose edge was taken first)
_OK = (NodeStatus.SUCCEEDED, NodeStatus.EXCEPTION)


class Scheduler:
    def __init__(self, run: RunExecutor, scope: Scope, frame: LoopFrame | None = None) -> None:
        self.run = run
        self.scope = scope
        self.frame = frame
        self._nodes = run.plan.nodes
        self._pending = {nid: len(self._nodes[nid].incoming) for nid in scope.nodes}
        self._taken: dict[str, str | None] = {}
        self.done: set[str] = set()
        self.skipped: set[str] = set()
        self._running: dict[asyncio.Task[Outcome], PlannedNode] = {}
        self._loops: dict[asyncio.Task[Outcome], LoopRunner] = {}
        self._reasons: dict[asyncio.Task[Outcome], StopReason] = {}
        self._work: deque[tuple[Edge, bool]] = deque()
        self._ready: list[Ready] = []
        self._held: list[Ready] = []  # ready while the run is paused (top level only)
        self.stop_reason: StopReason | None = None
        self.stopped = asyncio.Event()
        self.failure: tuple[str, str] | None = None  # (node id, error): a LOOP body's first
        self.tokens = 0
        self.outputs: dict[str, dict[str, Any]] = {}  # of the nodes that succeeded here
        self.branches = BranchTracker(self)
        self.variables: Mapping[str, Any] = (
            ChainMap({"loop": frame.binding()}, run.variables) if frame else run.variables
        )

    @property
    def top(self) -> bool:
        return self.frame is None

    # Running

    async def execute(self, ready: Iterable[Ready]) -> None:
        self._start_all(ready)
        try:
            while self._running or self._held:
                if not self._running:
                    # Paused or at a breakpoint, nothing running: until resumed, stepped, halted.
                    held, self._held = self._held, []
                    await self.run.hold([node_id for node_id, _ in held])
                    self._start_all(held)
                    continue
                done, _ = await asyncio.wait(self._running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    planned = self._running.pop(task)
                    self._loops.pop(task, None)
                    self._reasons.pop(task, None)
                    if task.cancelled():  # cancelled before it ran: it never started
                        if self.branches.is_lost(planned.node.id):
                            self._skip(planned.node.id)
                            self._drain()
                        continue
                    self._start_all(self.complete(self._outcome(task, planned)))
        except asyncio.CancelledError:
            await self._abandon()
            raise
        self.branches.close()

    def _outcome(self, task: asyncio.Task[Outcome], planned: PlannedNode) -> Outcome:
        error = task.exception()
        if error is None:
            return task.result()
        # A bug outside any node's own code (NodeRun catches those): fail the node, not the run's
        # bookkeeping, so the run still ends with its one workflow_finished.
        log.error("node %s of run %s crashed", planned.node.id, self.run.run_id, exc_info=error)
        return Outcome(planned.node.id, NodeStatus.FAILED, None, f"internal error: {error!r}")

    async def _abandon(self) -> None:
        """This scope's coroutine was cancelled: the engine shuts down, or the LOOP timed out."""
        if self.top:
            self.run.shutting_down = True
        if self.run.shutting_down:
            for task in self._running:
                task.cancel()
            return
        assert self.frame is not None
        reason = StopReason(
            NodeStatus.FAILED, f"interrupted: LOOP `{self.frame.loop_id}` timed out", True
        )
        self.stop(reason)
        for task, planned in list(self._running.items()):  # also if it was stopping already
            self._interrupt(task, planned, reason)
        await asyncio.gather(*self._running, return_exceptions=True)
        self.branches.close()

    def _start_all(self, ready: Iterable[Ready]) -> None:
        for node_id, predecessor in ready:
            if self.stop_reason is not None:
                return
            if node_id in self.done:
                continue
            if self.top and self.run.holds(node_id):
                self._held.append((node_id, predecessor))
            else:
                self._start(node_id, predecessor)

    def _start(self, node_id: str, predecessor: str | None) -> None:
        if self.top:
            self.run.announce_resumed()
        planned = self._nodes[node_id]
        loop = LoopRunner(self, planned) if planned.composite else None
        node_run = NodeRun(self, planned, self.run.next_index(), predecessor, loop)
        task = asyncio.create_task(node_run())
        self._running[task] = planned
        if loop is not None:
            self._loops[task] = loop

    # Stopping

    def stop(self, reason: StopReason) -> None:
        if self.stop_reason is not None:
            return
        self.stop_reason = reason
        self.stopped.set()
        for task, planned in list(self._running.items()):
            self._interrupt(task, planned, reason)

    def stop_nodes(self, node_ids: frozenset[str], reason: StopReason) -> None:
        """Interrupt the running nodes among `node_ids` (a PARALLEL branch that lost its race)."""
        for task, planned in list(self._running.items()):
            if planned.node.id in node_ids:
                self._interrupt(task, planned, reason)

    def _interrupt(
        self, task: asyncio.Task[Outcome], planned: PlannedNode, reason: StopReason
    ) -> None:
        loop = self._loops.get(task)
        if loop is not None:
            loop.stop(reason)
        elif reason.interrupt_all or planned.kind.interruptible:
            self._reasons.setdefault(task, reason)
            task.cancel()

    def reason_for(self, task: asyncio.Task[Any] | None) -> StopReason | None:
        """Why a node task of this scope was cancelled; None if the engine is shutting down."""
        return self._reasons.get(task) if task is not None else None

    # Completion

    def replay(self, finished: list[FinishedNode]) -> list[Ready]:
        """Rebuild the schedule from the nodes a run finished before it was handed over.

        Nodes inside LOOP bodies only restore their outputs: a LOOP that had not finished runs
        again from its first iteration. A node stopped by a halt runs again too; one stopped
        because its PARALLEL branch lost counts as done (and untaken).
        """
        ready: list[Ready] = [(self.scope.entry, None)]
        for node in finished:
            planned = self._nodes.get(node.node_id)
            if planned is None:
                continue
            if planned.scope != self.scope.owner:
                if node.status in _OK:
                    self.run.variables[node.node_id] = node.outputs
                continue
            if node.status == NodeStatus.STOPPED and not self.branches.is_lost(node.node_id):
                continue
            branch = node.outputs.get("result") if planned.node.type == NodeType.CONDITION else None
            result = NodeResult(outputs=node.outputs, branch=branch)
            ready.extend(self.complete(Outcome(node.node_id, node.status, result, node.error)))
        return [(nid, pred) for nid, pred in ready if nid not in self.done]

    def complete(self, outcome: Outcome) -> list[Ready]:
        """Record a finished node, resolve its edges; return the nodes that became ready."""
        planned = self._nodes[outcome.node_id]
        self.done.add(outcome.node_id)
        self.run.record(self, planned, outcome)
        stopping = self.stop_reason is not None
        if outcome.status in _OK:
            result = outcome.result or NodeResult(outputs={})
            self.outputs[outcome.node_id] = result.outputs
            if not stopping:
                errored = outcome.status == NodeStatus.EXCEPTION
                self._resolve(planned, ok=True, branch=result.branch, errored=errored)
        elif self.branches.is_lost(outcome.node_id):
            if not stopping:
                self._resolve(planned, ok=False)
        else:
            error = outcome.error or "node failed"
            self.branches.record_end(outcome.node_id, outcome.status, error)
            if outcome.status == NodeStatus.FAILED and not stopping:
                self._fail(outcome.node_id, error)
        self.branches.settled(outcome.node_id)
        self._drain()
        if self.top and not self.run.replaying:
            self.run.emit_progress(len(self.done), self.run.plan.size - len(self.skipped))
        ready, self._ready = self._ready, []
        return ready

    def _fail(self, node_id: str, error: str) -> None:
        if self.top:
            self.run.fail_from_node(error)
        else:
            self.failure = (node_id, error)
            self.stop(StopReason(NodeStatus.STOPPED, error, False))

    def _resolve(
        self, planned: PlannedNode, ok: bool, branch: Any = None, errored: bool = False
    ) -> None:
        """Queue `planned`'s outgoing edges as taken or not; PARALLEL branches start later."""
        error_branch = errored and planned.error_target is not None
        branches: list[Edge] = []
        for edge in planned.outgoing:
            if edge.on_error:
                taken = ok and error_branch
            elif error_branch:
                taken = False  # the failing node's normal edges
            elif edge.type == ConnectionType.PARALLEL and ok:
                branches.append(edge)
                continue
            else:
                taken = _taken(edge, ok, branch) and self._condition_holds(edge)
            self._work.append((edge, taken))
        if branches:
            self.branches.fork(planned, branches)

    def _condition_holds(self, edge: Edge) -> bool:
        """A CONDITIONAL edge is taken when its condition holds over the values so far; one
        that cannot be evaluated fails the scope (its source's status stays as it was)."""
        if edge.condition is None:
            return True
        try:
            return compile_condition(edge.condition).evaluate(self.variables)
        except ExpressionError as exc:
            self._fail(
                edge.source, f"the condition of connection {edge.source} → {edge.target}: {exc}"
            )
            return False

    def release(self, edge: Edge, taken: bool) -> None:
        """The branch tracker starts (or drops) a PARALLEL branch by resolving its edge."""
        self._work.append((edge, taken))

    def _drain(self) -> None:
        while self._work:
            edge, taken = self._work.popleft()
            if taken:
                self._taken.setdefault(edge.target, edge.source)
            self._pending[edge.target] -= 1
            if self._pending[edge.target] > 0:
                continue
            if edge.target in self._taken and not self.branches.is_lost(edge.target):
                self._ready.append((edge.target, self._taken[edge.target]))
            else:
                self._skip(edge.target)

    def _skip(self, node_id: str) -> None:
        self.skipped.add(node_id)
        self._resolve(self._nodes[node_id], ok=False)
        self.branches.settled(node_id)

    def metadata_for(self, planned: PlannedNode) -> dict[str, Any]:
        """Dify's `execution_metadata` keys for a node inside a branch or a LOOP body."""
        metadata: dict[str, Any] = {}
        if planned.branch is not None:
            metadata["parallel_id"], metadata["parallel_start_node_id"] = planned.branch
        if self.frame is not None:
            metadata["loop_id"] = self.frame.loop_id
            metadata["loop_index"] = self.frame.index
        return metadata


def _taken(edge: Edge, ok: bool, branch: Any) -> bool:
    if not ok:
        return False
    if edge.type == ConnectionType.CONDITIONAL_TRUE:
        return branch is True
    if edge.type == ConnectionType.CONDITIONAL_FALSE:
        return branch is False
    return True  # CONDITIONAL: its condition decides (`Scheduler._condition_holds`)
