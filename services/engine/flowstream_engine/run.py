"""Executes one run: schedules ready nodes concurrently and emits every event of DESIGN §4.

Scheduling is dead-path elimination over the DAG: a node runs once every incoming edge is resolved
and at least one was taken; a node none of whose edges was taken is skipped, and so are the nodes
only it leads to. An untaken CONDITION branch therefore never starts.

A run ends exactly once, through :meth:`RunExecutor._finish`, whichever of these comes first: every
node done, a node failure, a stop request, or the deadline. A stop interrupts nodes that wait on
the outside world (DELAY) at once and lets the others reach their boundary; the deadline interrupts
all of them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from flowstream_shared.commands import RunCommand
from flowstream_shared.events import (
    EventName,
    NodeFinishedData,
    NodeRetryData,
    NodeStartedData,
    NodeStatus,
    RunStatus,
    TextChunkData,
    WorkflowFinishedData,
    WorkflowProgressData,
    WorkflowStartedData,
)
from flowstream_shared.workflow import ConnectionType, NodeType

from flowstream_engine.emitter import RunEmitter
from flowstream_engine.nodes.base import NodeContext, NodeError, NodeResult
from flowstream_engine.plan import Edge, Plan, PlannedNode
from flowstream_engine.state import RunState

log = logging.getLogger(__name__)

STOPPED_BY_USER = "Stopped by user."


@dataclass(frozen=True)
class _Halt:
    status: RunStatus
    error: str
    # The deadline interrupts every node; a stop or a failure only the interruptible ones.
    interrupt_all: bool
    node_status: NodeStatus


@dataclass
class _Outcome:
    node_id: str
    status: NodeStatus
    result: NodeResult | None
    error: str | None


class RunExecutor:
    def __init__(
        self,
        command: RunCommand,
        plan: Plan,
        emitter: RunEmitter,
        state: RunState | None = None,
    ) -> None:
        self._command = command
        self._plan = plan
        self._emitter = emitter
        self._state = state or RunState()
        self._halt: _Halt | None = None
        self._running: dict[asyncio.Task[_Outcome], PlannedNode] = {}
        self._pending_parents = {nid: len(pn.incoming) for nid, pn in plan.nodes.items()}
        self._taken: dict[str, str | None] = {}  # node id → first predecessor whose edge was taken
        self._done: set[str] = set()
        self._skipped: set[str] = set()
        self._index = self._state.node_index
        self._steps = 0
        self._tokens = self._state.total_tokens
        self._outputs: dict[str, Any] = {}
        self._handled_errors = 0
        self._variables: dict[str, Any] = {
            "input": dict(command.inputs),
            "execution": {
                "id": command.run_id,
                "task_id": command.task_id,
                "workflow_id": command.workflow.workflow_id,
            },
            "sys": {
                "user_id": command.end_user or command.user_id,
                "workflow_id": command.workflow.workflow_id,
                "workflow_run_id": command.run_id,
            },
        }

    # Control, called from outside the run's task.

    def request_stop(self, reason: str = STOPPED_BY_USER) -> None:
        self._set_halt(
            _Halt(RunStatus.STOPPED, reason or STOPPED_BY_USER, False, NodeStatus.STOPPED)
        )

    def fail(self, error: str) -> None:
        self._set_halt(_Halt(RunStatus.FAILED, error, True, NodeStatus.FAILED))

    def _set_halt(self, halt: _Halt) -> None:
        if self._halt is None:
            self._halt = halt
            self._interrupt()

    def _interrupt(self) -> None:
        assert self._halt is not None
        for task, planned in self._running.items():
            if self._halt.interrupt_all or planned.kind.interruptible:
                task.cancel()

    # The run.

    async def execute(self) -> WorkflowFinishedData:
        if self._state.finished is not None:
            return self._state.finished.data  # already ended: a redelivered command
        started_at = self._state.started_at or self._command.created_at
        if self._state.started_at is None:
            self._emit_started(started_at)
        # The deadline halts the run like a stop does, so every interrupted node still reports.
        deadline = asyncio.get_running_loop().call_later(
            max(0.0, self._command.deadline - time.time()), self._on_deadline
        )
        try:
            await self._schedule()
        except asyncio.CancelledError:
            for task in self._running:
                task.cancel()  # the engine is shutting down; another engine resumes the run
            raise
        finally:
            deadline.cancel()
        return await self._finish(started_at)

    def _on_deadline(self) -> None:
        timeout = self._command.deadline - self._command.created_at
        self._set_halt(
            _Halt(
                RunStatus.FAILED, f"workflow timed out after {timeout:g}s", True, NodeStatus.FAILED
            )
        )

    def _emit_started(self, started_at: float) -> None:
        inputs = dict(self._command.inputs)
        inputs.update({f"sys.{k}": v for k, v in self._variables["sys"].items()})
        self._emitter.emit(
            EventName.WORKFLOW_STARTED,
            WorkflowStartedData(
                id=self._command.run_id,
                workflow_id=self._plan.workflow_id,
                workflow_version=self._plan.version,
                inputs=inputs,
                created_at=int(started_at),
            ),
        )

    async def _schedule(self) -> None:
        ready = self._replay()
        for node_id, predecessor in ready:
            self._start(node_id, predecessor)
        while self._running:
            done, _ = await asyncio.wait(self._running, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                self._running.pop(task)
                if not task.cancelled():  # cancelled before it ran: it never started
                    self._complete(task.result())

    def _replay(self) -> list[tuple[str, str | None]]:
        """Rebuild the scheduler from nodes finished earlier (a resumed run); return the ready."""
        ready: list[tuple[str, str | None]] = [(self._plan.start, None)]
        for finished in self._state.finished_nodes:
            self._done.add(finished.node_id)
            if finished.status in (NodeStatus.SUCCEEDED, NodeStatus.EXCEPTION):
                self._variables[finished.node_id] = finished.outputs
                if self._plan.nodes[finished.node_id].node.type == NodeType.START:
                    self._variables["input"] = finished.outputs
            planned = self._plan.nodes[finished.node_id]
            branch = (
                finished.outputs.get("result") if planned.node.type == NodeType.CONDITION else None
            )
            ready.extend(
                self._resolve(planned, ok=finished.status != NodeStatus.FAILED, branch=branch)
            )
            if planned.node.type == NodeType.END:
                self._outputs.update(finished.outputs)
        return [(nid, pred) for nid, pred in ready if nid not in self._done]

    def _start(self, node_id: str, predecessor: str | None) -> None:
        planned = self._plan.nodes[node_id]
        self._index += 1
        task = asyncio.create_task(self._run_node(planned, self._index, predecessor))
        self._running[task] = planned

    def _complete(self, outcome: _Outcome) -> None:
        self._done.add(outcome.node_id)
        self._steps += 1
        planned = self._plan.nodes[outcome.node_id]
        if outcome.status in (NodeStatus.SUCCEEDED, NodeStatus.EXCEPTION):
            result = outcome.result or NodeResult(outputs={})
            self._variables[outcome.node_id] = result.outputs
            if planned.node.type == NodeType.START:
                self._variables["input"] = result.outputs  # validated, defaults filled in
            self._tokens += result.tokens
            if planned.node.type == NodeType.END:
                self._outputs.update(result.outputs)
            if outcome.status == NodeStatus.EXCEPTION:
                self._handled_errors += 1
            if self._halt is None:
                for node_id, predecessor in self._resolve(planned, ok=True, branch=result.branch):
                    self._start(node_id, predecessor)
        elif outcome.status == NodeStatus.FAILED and self._halt is None:
            self._set_halt(
                _Halt(RunStatus.FAILED, outcome.error or "node failed", False, NodeStatus.STOPPED)
            )
        self._emit_progress()

    def _resolve(self, planned: PlannedNode, ok: bool, branch: Any) -> list[tuple[str, str | None]]:
        """Mark `planned`'s outgoing edges taken or not; return the nodes that became ready."""
        ready: list[tuple[str, str | None]] = []
        stack: list[tuple[PlannedNode, bool, Any]] = [(planned, ok, branch)]
        while stack:
            source, source_ok, source_branch = stack.pop()
            for edge in source.outgoing:
                if _taken(edge, source_ok, source_branch, source.node.type):
                    self._taken.setdefault(edge.target, source.node.id)
                self._pending_parents[edge.target] -= 1
                if self._pending_parents[edge.target] == 0:
                    if edge.target in self._taken:
                        ready.append((edge.target, self._taken[edge.target]))
                    else:
                        self._skipped.add(edge.target)
                        stack.append((self._plan.nodes[edge.target], False, None))
        return ready

    def _emit_progress(self) -> None:
        total = self._plan.size - len(self._skipped)
        completed = len(self._done)
        self._emitter.emit(
            EventName.WORKFLOW_PROGRESS,
            WorkflowProgressData(
                completed_steps=completed,
                total_steps=total,
                percent=round(100.0 * completed / total, 1) if total else 100.0,
            ),
        )

    async def _finish(self, started_at: float) -> WorkflowFinishedData:
        finished_at = time.time()
        if self._halt is not None:
            status, error, outputs = self._halt.status, self._halt.error, self._outputs or None
        elif self._handled_errors:
            status, error, outputs = RunStatus.PARTIAL_SUCCEEDED, None, self._outputs
        else:
            status, error, outputs = RunStatus.SUCCEEDED, None, self._outputs
        data = WorkflowFinishedData(
            id=self._command.run_id,
            workflow_id=self._plan.workflow_id,
            status=status,
            outputs=outputs,
            error=error,
            elapsed_time=round(finished_at - started_at, 6),
            total_tokens=self._tokens,
            total_steps=self._steps + len(self._state.finished_nodes),
            created_at=int(started_at),
            finished_at=int(finished_at),
        )
        self._emitter.emit(EventName.WORKFLOW_FINISHED, data)
        await self._emitter.flush()
        return data

    # One node.

    async def _run_node(
        self, planned: PlannedNode, index: int, predecessor: str | None
    ) -> _Outcome:
        node = planned.node
        execution_id = str(uuid.uuid4())
        created = time.time()
        started = time.perf_counter()
        selector = [node.id, "text"]
        inputs = self._variables["input"] if node.type == NodeType.START else None
        self._emitter.emit(
            EventName.NODE_STARTED,
            NodeStartedData(
                id=execution_id,
                node_id=node.id,
                node_type=node.type,
                title=node.title,
                index=index,
                predecessor_node_id=predecessor,
                inputs=inputs,
                created_at=int(created),
            ),
        )

        async def emit_text(text: str) -> None:
            self._emitter.emit(
                EventName.TEXT_CHUNK, TextChunkData(text=text, from_variable_selector=selector)
            )

        ctx = NodeContext(node, planned.config, self._command.run_id, self._variables, emit_text)
        retry = node.retry
        attempts = retry.max_attempts if retry else self._plan_retry_attempts()
        backoff = retry.backoff if retry else 1.0
        result: NodeResult | None = None
        error: str | None = None
        status = NodeStatus.SUCCEEDED
        try:
            for attempt in range(attempts):
                try:
                    async with asyncio.timeout(node.timeout):
                        result = await planned.kind.run(ctx)
                    error = None
                    break
                except TimeoutError:
                    error = f"node timed out after {node.timeout:g}s"
                except NodeError as exc:
                    error = str(exc)
                except Exception as exc:  # a node's own bug must not kill the run
                    log.exception("node %s of run %s raised", node.id, self._command.run_id)
                    error = f"{type(exc).__name__}: {exc}"
                if attempt + 1 < attempts:
                    self._emit_node_end(
                        EventName.NODE_RETRY, planned, execution_id, index, predecessor, None,
                        None, NodeStatus.RETRY, error, created, started, retry_index=attempt + 1,
                    )  # fmt: skip
                    await asyncio.sleep(backoff * 2**attempt)
        except asyncio.CancelledError:
            if self._halt is None:
                raise  # the engine is shutting down: leave the run for another engine
            status, error = self._halt.node_status, self._halt.error
        else:
            if error is not None:
                status = NodeStatus.EXCEPTION if node.on_error == "continue" else NodeStatus.FAILED
                if status == NodeStatus.EXCEPTION:
                    result = NodeResult(outputs={"error": error})
        outputs = result.outputs if result else None
        node_inputs = result.inputs if result else inputs
        self._emit_node_end(
            EventName.NODE_FINISHED, planned, execution_id, index, predecessor, node_inputs,
            outputs, status, error, created, started, tokens=result.tokens if result else 0,
        )  # fmt: skip
        return _Outcome(node.id, status, result, error)

    def _plan_retry_attempts(self) -> int:
        return self._command.workflow.definition.config.retry_count + 1

    def _emit_node_end(
        self,
        event: EventName,
        planned: PlannedNode,
        execution_id: str,
        index: int,
        predecessor: str | None,
        inputs: dict[str, Any] | None,
        outputs: dict[str, Any] | None,
        status: NodeStatus,
        error: str | None,
        created: float,
        started: float,
        tokens: int = 0,
        retry_index: int | None = None,
    ) -> None:
        node = planned.node
        fields: dict[str, Any] = {
            "id": execution_id,
            "node_id": node.id,
            "node_type": node.type,
            "title": node.title,
            "index": index,
            "predecessor_node_id": predecessor,
            "inputs": inputs,
            "outputs": outputs,
            "status": status,
            "error": error,
            "elapsed_time": round(time.perf_counter() - started, 6),
            "execution_metadata": {"total_tokens": tokens} if tokens else None,
            "created_at": int(created),
            "finished_at": int(time.time()),
        }
        if retry_index is None:
            self._emitter.emit(event, NodeFinishedData(**fields))
        else:
            self._emitter.emit(event, NodeRetryData(**fields, retry_index=retry_index))


def _taken(edge: Edge, ok: bool, branch: Any, source_type: str) -> bool:
    if not ok:
        return False
    if edge.type == ConnectionType.CONDITIONAL_TRUE:
        return branch is True
    if edge.type == ConnectionType.CONDITIONAL_FALSE:
        return branch is False
    return True
