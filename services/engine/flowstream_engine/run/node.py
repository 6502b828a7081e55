"""One node execution: `node_started`, attempts with retries and timeout, `on_error`, the end.

Retries wait `backoff`, then twice as long each time, emitting `node_retry` per failed attempt;
a stop of the node's scope ends the wait. After the last attempt, `on_error` decides: `fail`
(the node fails), `continue` or a node id (the node ends `exception` with `{"error": …}` as its
outputs; the scheduler takes its edges, or only the error edge).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from flowstream_shared.events import (
    EventName,
    NodeFinishedData,
    NodeRetryData,
    NodeStartedData,
    NodeStatus,
    TextChunkData,
)
from flowstream_shared.sizes import MARK, bounded, fits, json_size
from flowstream_shared.telemetry.logs import log_context
from flowstream_shared.telemetry.tracing import span
from flowstream_shared.workflow import NodeType
from opentelemetry.trace import Status, StatusCode

from flowstream_engine.emitter import EventTooLarge
from flowstream_engine.nodes.base import NodeContext, NodeError, NodeResult
from flowstream_engine.plan import PlannedNode
from flowstream_engine.run.common import Interrupted, Outcome, StopReason
from flowstream_engine.run.custom_metrics import custom_metrics

if TYPE_CHECKING:
    from flowstream_engine.run.loop import LoopRunner
    from flowstream_engine.run.scheduler import Scheduler

log = logging.getLogger(__name__)

# An error message is shown, not processed: a node cannot fill an event with one.
MAX_ERROR_CHARS = 8192


async def _stopped_within(stopped: asyncio.Event, seconds: float) -> bool:
    """Sleep `seconds` unless `stopped` is set first; say whether it was."""
    if seconds <= 0:
        return stopped.is_set()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stopped.wait()
    return stopped.is_set()


class NodeRun:
    """Executes one node in one scope, from `node_started` to `node_finished`."""

    def __init__(
        self,
        scheduler: Scheduler,
        planned: PlannedNode,
        index: int,
        predecessor: str | None,
        loop: LoopRunner | None = None,
    ) -> None:
        self._scheduler = scheduler
        self._run = scheduler.run
        self._planned = planned
        self._index = index
        self._predecessor = predecessor
        self._loop = loop
        self.execution_id = str(uuid.uuid4())
        self._created = time.time()
        self._started = time.perf_counter()

    async def __call__(self) -> Outcome:
        """The node, in a span of its own (tracing on), its id on every line it logs."""
        node = self._planned.node
        attributes = {
            "flowstream.node_id": node.id,
            "flowstream.node_type": node.type,
            "flowstream.node_execution_id": self.execution_id,
        }
        with (
            log_context(node_id=node.id),
            span(f"node {node.type}", __name__, attributes=attributes) as node_span,
        ):
            outcome = await self._execute()
            metrics = self._run.metrics
            if metrics is not None:
                elapsed = time.perf_counter() - self._started
                metrics.node_duration.labels(node.type, outcome.status.value).observe(elapsed)
            if node_span is not None:
                node_span.set_attribute("flowstream.status", outcome.status.value)
                if outcome.status == NodeStatus.FAILED:
                    node_span.set_status(Status(StatusCode.ERROR, outcome.error or "failed"))
            return outcome

    async def _execute(self) -> Outcome:
        node = self._planned.node
        inputs = self._run.variables["input"] if node.type == NodeType.START else None
        self._created, self._started = time.time(), time.perf_counter()
        self._run.emit(
            EventName.NODE_STARTED,
            NodeStartedData(
                id=self.execution_id,
                node_id=node.id,
                node_type=node.type,
                title=node.title,
                index=self._index,
                predecessor_node_id=self._predecessor,
                inputs=inputs,
                created_at=int(self._created),
            ),
        )
        if not getattr(self._planned.kind, "pure", False):
            await self._run.durable()  # acts on the outside world: only for the run's owner
        result: NodeResult | None = None
        error: str | None = None
        status = NodeStatus.SUCCEEDED
        try:
            result, error = await self._attempts()
        except asyncio.CancelledError:
            reason = self._scheduler.reason_for(asyncio.current_task())
            if reason is None:
                raise  # the engine is shutting down: leave the run for another engine
            status, error = reason.node_status, reason.error
        except Interrupted as stop:
            status, error = stop.reason.node_status, stop.reason.error
        else:
            if result is not None and error is None:
                error = self._oversized(result)
                if error is not None:
                    result = None
            if error is not None:
                status = NodeStatus.FAILED if node.on_error == "fail" else NodeStatus.EXCEPTION
                if status == NodeStatus.EXCEPTION:
                    result = NodeResult(outputs={"error": error})
        extra: dict[str, Any] = {}
        if result is not None and result.inputs is not None:
            result.inputs, cut = bounded(result.inputs, self._run.limits.node_output_max_bytes)
            if cut:
                extra["inputs_truncated"] = True
        if (
            result is not None
            and status == NodeStatus.SUCCEEDED
            and (node.metrics or result.metadata)
        ):
            values, errors = await custom_metrics(
                node, result, self._scheduler.variables, self._run.renderer
            )
            if values:
                extra["metrics"] = values
            if errors:
                extra["metrics_errors"] = errors
        try:
            self._emit_end(
                EventName.NODE_FINISHED,
                result.inputs if result and result.inputs is not None else inputs,
                result.outputs if result else None,
                status,
                error,
                tokens=result.tokens if result else 0,
                metadata=extra,
            )
        except EventTooLarge as exc:
            status, error, result = NodeStatus.FAILED, f"node result too large: {exc}", None
            self._emit_end(EventName.NODE_FINISHED, None, None, status, error)
        return Outcome(node.id, status, result, error)

    def _oversized(self, result: NodeResult) -> str | None:
        """Outputs over the limit fail the node here, before its `node_finished` exists: an
        event NATS would refuse is never built, so `seq` has no gap. (The recorded inputs, a
        rendered request say, are only a record: over the limit they are summarized instead.)"""
        limit = self._run.limits.node_output_max_bytes
        if fits(result.outputs, limit):
            return None
        size = json_size(result.outputs)
        return (
            f"the node's outputs are {size:,} bytes as JSON, over the node output limit of "
            f"{limit:,} bytes (FLOWSTREAM_NODE_OUTPUT_MAX_BYTES)"
        )

    async def _attempts(self) -> tuple[NodeResult | None, str | None]:
        node = self._planned.node
        retry = node.retry
        attempts = retry.max_attempts if retry else self._run.default_attempts
        backoff = retry.backoff if retry else 1.0
        error: str | None = None
        for attempt in range(attempts):
            try:
                async with asyncio.timeout(node.timeout):
                    return await self._invoke(), None
            except Interrupted:
                raise
            except TimeoutError:
                error = f"node timed out after {node.timeout:g}s"
            except NodeError as exc:
                error = str(exc)
            except Exception as exc:  # a node's own bug must not kill the run
                log.exception("node %s of run %s raised", node.id, self._run.run_id)
                error = f"{type(exc).__name__}: {exc}"
            if attempt + 1 < attempts:
                self._emit_end(
                    EventName.NODE_RETRY,
                    None,
                    None,
                    NodeStatus.RETRY,
                    error,
                    retry_index=attempt + 1,
                )
                if await _stopped_within(self._stop_event(), backoff * 2**attempt):
                    raise Interrupted(self._stop_reason())
        return None, error

    async def _invoke(self) -> NodeResult:
        if self._loop is not None:
            return await self._loop.run(self.execution_id)
        selector = [self._planned.node.id, "text"]

        async def emit_text(text: str) -> None:
            self._run.emit(
                EventName.TEXT_CHUNK, TextChunkData(text=text, from_variable_selector=selector)
            )

        ctx = NodeContext(
            self._planned.node,
            self._planned.config,
            self._run.run_id,
            self._scheduler.variables,
            emit_text,
            http=self._run.http,
            execution_id=self.execution_id,
            credentials=self._run.credentials,
            secrets=self._run.secrets,
            apis=self._run.apis,
            renderer=self._run.renderer,
        )
        return await self._planned.kind.run(ctx)

    def _stop_event(self) -> asyncio.Event:
        return self._loop.stopped if self._loop is not None else self._scheduler.stopped

    def _stop_reason(self) -> StopReason:
        reason = self._loop.stop_reason if self._loop is not None else None
        reason = reason or self._scheduler.stop_reason
        assert reason is not None
        return reason

    def _emit_end(
        self,
        event: EventName,
        inputs: dict[str, Any] | None,
        outputs: dict[str, Any] | None,
        status: NodeStatus,
        error: str | None,
        tokens: int = 0,
        retry_index: int | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        node = self._planned.node
        metadata = {**self._scheduler.metadata_for(self._planned), **(metadata or {})}
        if tokens:
            metadata["total_tokens"] = tokens
        if error is not None and len(error) > MAX_ERROR_CHARS:
            error = error[:MAX_ERROR_CHARS] + MARK
        fields: dict[str, Any] = {
            "id": self.execution_id,
            "node_id": node.id,
            "node_type": node.type,
            "title": node.title,
            "index": self._index,
            "predecessor_node_id": self._predecessor,
            "inputs": inputs,
            "outputs": outputs,
            "status": status,
            "error": error,
            "elapsed_time": round(time.perf_counter() - self._started, 6),
            "execution_metadata": metadata or None,
            "created_at": int(self._created),
            "finished_at": int(time.time()),
        }
        if retry_index is None:
            self._run.emit(event, NodeFinishedData(**fields))
        else:
            self._run.emit(event, NodeRetryData(**fields, retry_index=retry_index))
