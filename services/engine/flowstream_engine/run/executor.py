"""The run: its start, the values its nodes share, its halts and its one `workflow_finished`.

A run ends exactly once, through :meth:`RunExecutor._finish`, whichever of these comes first:
every node done, a node failure, a stop request, or the deadline. A stop interrupts nodes that
wait on the outside world (DELAY, API_CALL, LLM) at once and lets the others reach their
boundary; the deadline interrupts all of them. Either way nothing new starts, LOOPs included.

A pause is not a halt: the top-level scheduler starts nothing new and holds the nodes that become
ready; running nodes (a DELAY, a whole LOOP) are not interrupted and run to their end. Once
nothing runs, the run emits one `workflow_paused`; a resume emits `workflow_resumed` and starts
what was held. A resume that arrives before the pause took effect cancels it with no events. A
stop or the deadline ends a paused run as usual, with its one `workflow_finished`. A run picked
up from the event log after `workflow_paused` stays paused if its flag still says so, and
announces `workflow_resumed` first if it does not.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
from flowstream_shared.commands import RunCommand
from flowstream_shared.events import (
    EventName,
    NodeFinishedData,
    NodeStatus,
    RunStatus,
    WorkflowFinishedData,
    WorkflowProgressData,
    WorkflowStartedData,
    WorkflowStatusData,
)
from flowstream_shared.sizes import fits, json_size
from flowstream_shared.workflow import NodeType
from pydantic import BaseModel

from flowstream_engine.credentials import CredentialResolver, RunCredentials, default_resolver
from flowstream_engine.emitter import EventTooLarge, RunEmitter
from flowstream_engine.http import shared_client
from flowstream_engine.limits import RunLimits, run_limits
from flowstream_engine.nodes.base import NodeResult
from flowstream_engine.plan import Plan, PlannedNode
from flowstream_engine.redaction import RunSecrets
from flowstream_engine.render.renderer import Renderer, shared_renderer
from flowstream_engine.run.common import INTERRUPTED, STOPPED_BY_USER, Halt, Outcome
from flowstream_engine.run.scheduler import Scheduler
from flowstream_engine.run_log import RunLogFailed
from flowstream_engine.state import RunState

log = logging.getLogger(__name__)


class RunExecutor:
    def __init__(
        self,
        command: RunCommand,
        plan: Plan,
        emitter: RunEmitter,
        state: RunState | None = None,
        http: httpx.AsyncClient | None = None,
        credentials: CredentialResolver | None = None,
        renderer: Renderer | None = None,
        limits: RunLimits | None = None,
    ) -> None:
        self._command = command
        self.plan = plan
        self._emitter = emitter
        self.state = state or RunState()
        self.http = http or shared_client()
        # Every secret value the run sends; masked in each event it emits.
        self.secrets = RunSecrets()
        self.credentials = RunCredentials(
            credentials or default_resolver(), command.user_id, self.secrets
        )
        self._renderer = renderer
        self.limits = limits or run_limits()
        self.run_id = command.run_id
        self.default_attempts = command.workflow.definition.config.retry_count + 1
        self._halt: Halt | None = None
        self._root: Scheduler | None = None
        self._index = self.state.node_index
        self.steps = 0
        self.tokens = self.state.total_tokens
        self.outputs: dict[str, Any] = {}
        self.handled_errors = 0
        self.replaying = False
        self.shutting_down = False
        self._progress_reported = -1  # the whole percent last reported
        self.pause_requested = False
        self._pause_announced = self.state.paused  # the log's last word: workflow_paused
        self._wake = asyncio.Event()  # a resume or a halt: a paused run looks again
        self.variables: dict[str, Any] = {
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

    @property
    def renderer(self) -> Renderer:
        """Resolved when a node first renders, inside the event loop its processes belong to."""
        if self._renderer is None:
            self._renderer = shared_renderer()
        return self._renderer

    # Control, called from outside the run's task.

    def request_stop(self, reason: str = STOPPED_BY_USER) -> None:
        self._set_halt(
            Halt(RunStatus.STOPPED, reason or STOPPED_BY_USER, False, NodeStatus.STOPPED)
        )

    def request_pause(self) -> None:
        """Start nothing new; announce `workflow_paused` once nothing runs. Twice is once."""
        if self._halt is None:
            self.pause_requested = True

    def request_resume(self) -> None:
        """Start what was held; a no-op when the run is not paused (or pausing)."""
        if self.pause_requested:
            self.pause_requested = False
            self._wake.set()

    def fail(self, error: str) -> None:
        self._set_halt(Halt(RunStatus.FAILED, error, True, NodeStatus.FAILED))

    def fail_from_node(self, error: str) -> None:
        """A top-level node failed: the run fails; interruptible nodes beside it are stopped."""
        self._set_halt(Halt(RunStatus.FAILED, error, False, NodeStatus.STOPPED))

    def _set_halt(self, halt: Halt) -> None:
        if self._halt is None:
            self._halt = halt
            self._wake.set()
            if self._root is not None:
                self._root.stop(halt.stop)

    async def hold(self) -> None:
        """The top-level scheduler has nothing running and holds ready nodes: while the pause
        stands, announce it (once) and wait for a resume or a halt."""
        while self.pause_requested and self._halt is None:
            if not self._pause_announced:
                self._pause_announced = True
                self._emit_status(EventName.WORKFLOW_PAUSED, RunStatus.PAUSED)
            self._wake.clear()
            await self._wake.wait()
        self._announce_resumed()

    def _announce_resumed(self) -> None:
        if self._pause_announced and self._halt is None and not self.pause_requested:
            self._pause_announced = False
            self._emit_status(EventName.WORKFLOW_RESUMED, RunStatus.RUNNING)

    def _emit_status(self, event: EventName, status: RunStatus) -> None:
        self.emit(
            event, WorkflowStatusData(id=self.run_id, status=status, created_at=int(time.time()))
        )

    # What nodes share.

    def emit(self, event: EventName, data: BaseModel) -> None:
        self._emitter.emit(event, self.secrets.model(data))

    def next_index(self) -> int:
        self._index += 1
        return self._index

    def record(self, scheduler: Scheduler, planned: PlannedNode, outcome: Outcome) -> None:
        """A node finished (or is replayed): its outputs become values later nodes read."""
        if not self.replaying:
            self.steps += 1
        if outcome.status not in (NodeStatus.SUCCEEDED, NodeStatus.EXCEPTION):
            return
        result = outcome.result or NodeResult(outputs={})
        self.variables[outcome.node_id] = result.outputs
        if planned.node.type == NodeType.START:
            self.variables["input"] = result.outputs  # validated, defaults filled in
        if not self.replaying:  # a replayed node's tokens are in the state already
            self.tokens += result.tokens
            scheduler.tokens += result.tokens
        if planned.node.type == NodeType.END:
            self.outputs.update(result.outputs)
        if outcome.status == NodeStatus.EXCEPTION:
            self.handled_errors += 1
        if self.replaying and planned.node.type == NodeType.LOOP:
            self.handled_errors += len(result.outputs.get("errors") or [])  # tolerated errors

    def emit_progress(self, completed: int, total: int) -> None:
        """Reported when the whole percent changes: every node of a small workflow, about a
        hundred times for a large one (a 1,000-node chain would otherwise add 1,000 events)."""
        whole = 100 * completed // total if total else 100
        if whole == self._progress_reported:
            return
        self._progress_reported = whole
        self.emit(
            EventName.WORKFLOW_PROGRESS,
            WorkflowProgressData(
                completed_steps=completed,
                total_steps=total,
                percent=round(100.0 * completed / total, 1) if total else 100.0,
            ),
        )

    # The run.

    async def execute(self) -> WorkflowFinishedData:
        if self.state.finished is not None:
            return self.state.finished.data  # already ended: a redelivered command
        started_at = self.state.started_at or self._command.created_at
        if self.state.started_at is None:
            self._emit_started(started_at)
        self._report_interrupted()
        # The deadline halts the run like a stop does, so every interrupted node still reports.
        deadline = asyncio.get_running_loop().call_later(
            max(0.0, self._command.deadline - time.time()), self._on_deadline
        )
        root = self._root = Scheduler(self, self.plan.top)
        if self._halt is not None:
            root.stop(self._halt.stop)  # stopped before it started: no node runs
        self._announce_resumed()  # picked up after `workflow_paused`, and no longer paused
        try:
            self.replaying = True
            ready = root.replay(self.state.finished_nodes)
            self.replaying = False
            await root.execute(ready)
            return await self._finish(started_at)
        finally:
            deadline.cancel()
            self.secrets.release()

    def _on_deadline(self) -> None:
        timeout = self._command.deadline - self._command.created_at
        self._set_halt(
            Halt(
                RunStatus.FAILED, f"workflow timed out after {timeout:g}s", True, NodeStatus.FAILED
            )
        )

    def _report_interrupted(self) -> None:
        """Nodes that were running when the run's last engine stopped end `stopped` in the log
        before they run again (at least once: their effects may have happened)."""
        now = time.time()
        for started in self.state.running.values():
            self.emit(
                EventName.NODE_FINISHED,
                NodeFinishedData(
                    id=started.id,
                    node_id=started.node_id,
                    node_type=started.node_type,
                    title=started.title,
                    index=started.index,
                    predecessor_node_id=started.predecessor_node_id,
                    inputs=started.inputs,
                    outputs=None,
                    status=NodeStatus.STOPPED,
                    error=INTERRUPTED,
                    elapsed_time=round(max(0.0, now - started.created_at), 6),
                    created_at=started.created_at,
                    finished_at=int(now),
                ),
            )
        self.state.running.clear()

    async def durable(self) -> None:
        """Wait until every event emitted so far is stored: a node that acts on the outside world
        starts only once its `node_started` is, so it never acts for an attempt that has lost
        the run. If the log failed, wait for the cancellation that ends this attempt."""
        try:
            await self._emitter.flush()
        except RunLogFailed:
            await asyncio.Event().wait()

    def _emit_started(self, started_at: float) -> None:
        inputs = dict(self._command.inputs)
        inputs.update({f"sys.{k}": v for k, v in self.variables["sys"].items()})
        data = WorkflowStartedData(
            id=self._command.run_id,
            workflow_id=self.plan.workflow_id,
            workflow_version=self.plan.version,
            inputs=inputs,
            created_at=int(started_at),
            user_id=self._command.user_id,
        )
        try:
            self.emit(EventName.WORKFLOW_STARTED, data)
        except EventTooLarge as exc:
            # The gateway bounds inputs well under the event limit; never let them stop a run.
            log.warning("run %s: %s; its inputs are left out of the event", self.run_id, exc)
            self.emit(EventName.WORKFLOW_STARTED, data.model_copy(update={"inputs": {}}))

    def _created_by(self) -> dict[str, Any]:
        """Dify's shape: an end user is `{"id", "user"}`, an account `{"id", "name", "email"}`."""
        end_user = self._command.end_user
        if end_user is not None:
            return {"id": end_user, "user": end_user}
        return {"id": self._command.user_id, "name": self._command.user_id, "email": None}

    def _outputs_too_large(self) -> str | None:
        """Each END's outputs passed the node limit; several ENDs together may not."""
        limit = self.limits.node_output_max_bytes
        if not self.outputs or fits(self.outputs, limit):
            return None
        size = json_size(self.outputs)
        if self._halt is not None:
            self.outputs = {}  # the run fails anyway: its error says why, its outputs go
            return None
        return (
            f"the run's outputs are {size:,} bytes as JSON, over the output limit of {limit:,} "
            "bytes (FLOWSTREAM_NODE_OUTPUT_MAX_BYTES)"
        )

    async def _finish(self, started_at: float) -> WorkflowFinishedData:
        finished_at = time.time()
        too_large = self._outputs_too_large()
        if self._halt is not None:
            status, error, outputs = self._halt.status, self._halt.error, self.outputs or None
        elif too_large:
            status, error, outputs = RunStatus.FAILED, too_large, None
        elif self.handled_errors:
            status, error, outputs = RunStatus.PARTIAL_SUCCEEDED, None, self.outputs
        else:
            status, error, outputs = RunStatus.SUCCEEDED, None, self.outputs
        data = WorkflowFinishedData(
            id=self._command.run_id,
            workflow_id=self.plan.workflow_id,
            status=status,
            outputs=outputs,
            error=error,
            elapsed_time=round(finished_at - started_at, 6),
            total_tokens=self.tokens,
            total_steps=self.steps + len(self.state.finished_nodes),
            created_at=int(started_at),
            finished_at=int(finished_at),
            user_id=self._command.user_id,
            exceptions_count=self.handled_errors,
            created_by=self._created_by(),
        )
        try:
            self.emit(EventName.WORKFLOW_FINISHED, data)
        except EventTooLarge as exc:
            data = data.model_copy(
                update={"status": RunStatus.FAILED, "outputs": None, "error": f"outputs: {exc}"}
            )
            self.emit(EventName.WORKFLOW_FINISHED, data)
        await self._emitter.flush()
        return data
