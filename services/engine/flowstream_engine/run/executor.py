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

A debugged run (`RunCommand.debug`) holds top-level nodes the same way: before every node in
step mode, before its breakpoints otherwise. Its pause says why (`step` or `breakpoint`) and which
nodes it holds. A STEP names the pause it answers (its `seq`): it starts the held nodes, and the
run pauses again before the next ones. A RESUME leaves step mode and passes the breakpoint held
at; later breakpoints still hold. Whether a node has passed its breakpoint is not in the log:
after a hand-over, a node that had not finished holds again, so a debugged run never gets ahead
of its debugger. `workflow_resumed` is announced just before the first node starts after a pause.

Hooks (`flowstream.hooks` entry points) see `workflow_started`, each `node_finished` and
`workflow_finished` as they are emitted, off the run's path (see `flowstream_engine.hooks`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
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
from flowstream_shared.telemetry.logs import log_context
from flowstream_shared.telemetry.tracing import span
from flowstream_shared.workflow import NodeType
from opentelemetry.trace import SpanKind, Status, StatusCode
from pydantic import BaseModel

from flowstream_engine.credentials import CredentialResolver, RunCredentials, default_resolver
from flowstream_engine.emitter import EventTooLarge, RunEmitter
from flowstream_engine.hooks import RunHooks, installed_hooks
from flowstream_engine.http import shared_client
from flowstream_engine.limits import RunLimits, run_limits
from flowstream_engine.metrics import EngineMetrics
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
        hooks: RunHooks | None = None,
        metrics: EngineMetrics | None = None,
    ) -> None:
        self._command = command
        self.metrics = metrics
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
        self.hooks = hooks or RunHooks(installed_hooks())
        self.apis = command.workflow.apis
        self.run_id = command.run_id
        self.default_attempts = command.workflow.definition.config.retry_count + 1
        self._halt: Halt | None = None
        self._root: Scheduler | None = None
        # Told of a succeeded run's end before its `workflow_finished` is emitted, so what it
        # records (a cached result) exists before any client learns the run has ended.
        self.before_success: Callable[[WorkflowFinishedData], Awaitable[None]] | None = None
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
        # Nothing follows a `workflow_paused` until the run goes on: its seq is the log's last.
        self._pause_seq: int | None = self.state.last_seq if self.state.paused else None
        self._wake = asyncio.Event()  # a resume or a halt: a paused run looks again
        debug = command.debug
        self._breakpoints = frozenset(debug.breakpoints) if debug else frozenset()
        self.stepping = bool(debug and debug.step)
        self._passed: set[str] = set()  # held at a breakpoint (or a step), then let through
        self._holding = False
        self._released = False  # a RESUME while holding: pass the nodes held
        self._step_for: int | None = None  # the pause a STEP answers
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
        """Start what was held; a no-op when the run is not paused (or pausing). A debugged run
        leaves step mode and passes the breakpoint it holds at."""
        self.stepping = False
        if self._holding:
            self._released = True
        if self.pause_requested or self._holding:
            self.pause_requested = False
            self._wake.set()

    def request_step(self, pause_seq: int | None) -> None:
        """Start the nodes held at the pause announced at `pause_seq`; pause before the next."""
        if self._halt is not None:
            return
        self.pause_requested = False
        self.stepping = True
        self._step_for = pause_seq
        self._wake.set()

    def holds(self, node_id: str) -> bool:
        """Whether a top-level node that became ready is held rather than started."""
        return self.pause_requested or self._breaks_before(node_id)

    def _breaks_before(self, node_id: str) -> bool:
        return node_id not in self._passed and (self.stepping or node_id in self._breakpoints)

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

    async def hold(self, held: list[str]) -> None:
        """The top-level scheduler has nothing running and holds `held`: while the pause (or a
        breakpoint) stands, announce it (once) and wait for a resume, a step or a halt."""
        self._holding = True
        try:
            while self._halt is None and self._must_hold(held):
                if not self._pause_announced:
                    self._pause_announced = True
                    reason = "pause" if self.pause_requested else self._debug_reason(held)
                    self._pause_seq = self._emit_status(
                        EventName.WORKFLOW_PAUSED, RunStatus.PAUSED, reason, held
                    )
                self._wake.clear()
                await self._wake.wait()
        finally:
            self._holding = False
        self._released = False
        self._step_for = None
        self._passed.update(held)

    def _must_hold(self, held: list[str]) -> bool:
        if self.pause_requested:
            return True
        if self._released or not any(self._breaks_before(node_id) for node_id in held):
            return False
        return not (self._step_for is not None and self._step_for == self._pause_seq)

    def _debug_reason(self, held: list[str]) -> str:
        return "breakpoint" if any(n in self._breakpoints for n in held) else "step"

    def announce_resumed(self) -> None:
        """A top-level node is about to start: a paused log says the run goes on, first."""
        if self._pause_announced and self._halt is None and not self.pause_requested:
            self._pause_announced = False
            self._pause_seq = None
            self._emit_status(EventName.WORKFLOW_RESUMED, RunStatus.RUNNING)

    def _emit_status(
        self,
        event: EventName,
        status: RunStatus,
        reason: str | None = None,
        node_ids: list[str] | None = None,
    ) -> int:
        return self.emit(
            event,
            WorkflowStatusData(
                id=self.run_id,
                status=status,
                created_at=int(time.time()),
                reason=reason,
                node_ids=node_ids,
            ),
        )

    # What nodes share.

    def emit(self, event: EventName, data: BaseModel) -> int:
        """Emit an event of the run; answer its `seq`."""
        data = self.secrets.model(data)
        seq = self._emitter.emit(event, data)
        if self.hooks.listening:
            self.hooks.notify(self._emitter.model(event, data, seq))
        return seq

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
        """The run, in a span (tracing on) and with its ids on every log line it writes."""
        workflow_id = self._command.workflow.workflow_id
        attributes = {"flowstream.run_id": self.run_id, "flowstream.workflow_id": workflow_id}
        with (
            log_context(run_id=self.run_id, workflow_id=workflow_id),
            span("run", __name__, SpanKind.CONSUMER, attributes) as run_span,
        ):
            finished = await self._execute()
            if run_span is not None:
                run_span.set_attribute("flowstream.status", finished.status.value)
                if finished.status == RunStatus.FAILED:
                    run_span.set_status(Status(StatusCode.ERROR, finished.error or "failed"))
            return finished

    async def _execute(self) -> WorkflowFinishedData:
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
        if self.shutting_down:  # the engine stops: wait for the cancellation that hands it over
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
        if status == RunStatus.SUCCEEDED and self.before_success is not None:
            await self.before_success(data)
        try:
            self.emit(EventName.WORKFLOW_FINISHED, data)
        except EventTooLarge as exc:
            data = data.model_copy(
                update={"status": RunStatus.FAILED, "outputs": None, "error": f"outputs: {exc}"}
            )
            self.emit(EventName.WORKFLOW_FINISHED, data)
        await self._emitter.flush()
        self._report_finished(data, finished_at - started_at)
        return data

    def _report_finished(self, data: WorkflowFinishedData, seconds: float) -> None:
        """One line per finished run, and its duration by status."""
        status = data.status.value
        if self.metrics is not None:
            self.metrics.run_duration.labels(status).observe(max(0.0, seconds))
        extra = {"status": status, "duration_s": round(seconds, 6), "steps": data.total_steps}
        if data.status == RunStatus.FAILED:
            log.warning("run failed: %s", data.error, extra=extra)
        elif data.status == RunStatus.STOPPED:
            log.info("run stopped: %s", data.error, extra=extra)
        else:
            log.info("run %s", status, extra=extra)
