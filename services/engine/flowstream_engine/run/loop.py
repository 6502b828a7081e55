"""One execution of a LOOP node: its iterations, each a fresh schedule of the body.

The body runs, then the loop goes on while `condition` holds (evaluated with `loop.index` = the
index the next iteration would have, and the body's latest outputs) and fewer than
`max_iterations` ran. A body node that fails fails the iteration: with `break_on_error` (the
default) the LOOP fails with that error; otherwise the error is recorded in the LOOP's `errors`
output, counts as handled (the run ends `partial-succeeded`) and the next iteration starts.

Events: `loop_started` after the LOOP's `node_started`, `loop_next` before every iteration but
the first, `loop_completed` before its `node_finished`.
"""

from __future__ import annotations

import asyncio
import time
from collections import ChainMap
from typing import TYPE_CHECKING, Any

from flowstream_shared.events import (
    EventName,
    LoopCompletedData,
    LoopNextData,
    LoopStartedData,
    NodeStatus,
)
from flowstream_shared.expressions import ExpressionError
from flowstream_shared.workflow import LoopConfig

from flowstream_engine.nodes.base import NodeError, NodeResult
from flowstream_engine.plan import PlannedNode
from flowstream_engine.run.common import Interrupted, LoopFrame, StopReason

if TYPE_CHECKING:
    from flowstream_engine.run.scheduler import Scheduler


class LoopRunner:
    def __init__(self, parent: Scheduler, planned: PlannedNode) -> None:
        self._parent = parent
        self._run = parent.run
        self._planned = planned
        self._config: LoopConfig = planned.config
        self.stop_reason: StopReason | None = None
        self.stopped = asyncio.Event()
        self._child: Scheduler | None = None

    def stop(self, reason: StopReason) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
            self.stopped.set()
        if self._child is not None:
            self._child.stop(reason)

    async def run(self, execution_id: str) -> NodeResult:
        """One attempt: every iteration, bracketed by `loop_started` and `loop_completed`."""
        node, config = self._planned.node, self._config
        inputs = {"max_iterations": config.max_iterations, "condition": config.condition}
        created, started = time.time(), time.perf_counter()
        self._emit_started(execution_id, inputs, created)
        iterations, errors, tokens = 0, [], 0
        outputs: dict[str, Any] | None = None
        status, error = NodeStatus.FAILED, None
        try:
            while True:
                self._check_stop()
                child = self._parent.__class__(
                    self._run,
                    self._run.plan.scopes[node.id],
                    LoopFrame(node.id, iterations, execution_id),
                )
                self._child = child
                try:
                    await child.execute([(child.scope.entry, node.id)])
                finally:
                    self._child = None
                    tokens += child.tokens
                iterations += 1
                self._check_stop()
                if child.failure is not None:
                    failed, message = child.failure
                    where = f"iteration {iterations - 1}, node `{failed}`: {message}"
                    if config.break_on_error:
                        raise NodeError(where)
                    errors.append(where)
                    self._run.handled_errors += 1
                if not await self._again(iterations):
                    break
                self._emit_next(execution_id, iterations, child.outputs)
            outputs = {"iterations": iterations, "errors": errors}
            status = NodeStatus.SUCCEEDED
            return NodeResult(outputs=outputs, inputs=inputs)
        except Interrupted as stop:
            status, error = stop.reason.node_status, stop.reason.error
            raise
        except NodeError as exc:
            error = str(exc)
            raise
        except asyncio.CancelledError:  # its own timeout (or the engine shutting down)
            error = f"node timed out after {node.timeout:g}s" if node.timeout else "interrupted"
            raise
        finally:
            self._parent.tokens += tokens
            if not self._run.shutting_down:
                self._emit_completed(
                    execution_id,
                    inputs,
                    outputs,
                    status,
                    error,
                    iterations,
                    tokens,
                    created,
                    started,
                )

    def _check_stop(self) -> None:
        reason = self.stop_reason or self._parent.stop_reason
        if reason is not None:
            raise Interrupted(reason)

    async def _again(self, iterations: int) -> bool:
        config = self._config
        if iterations >= config.max_iterations:
            return False
        if config.condition is None:
            return True
        scope = ChainMap({"loop": {"index": iterations}}, self._run.variables)
        try:
            return await self._run.renderer.condition(config.condition, scope)
        except ExpressionError as exc:
            raise NodeError(f"condition {config.condition!r}: {exc}") from exc

    # Events

    def _header(self, execution_id: str) -> dict[str, Any]:
        node = self._planned.node
        return {"id": execution_id, "node_id": node.id, "node_type": node.type, "title": node.title}

    def _emit_started(self, execution_id: str, inputs: dict[str, Any], created: float) -> None:
        self._run.emit(
            EventName.LOOP_STARTED,
            LoopStartedData(
                **self._header(execution_id),
                created_at=int(created),
                inputs=inputs,
                metadata={"loop_length": self._config.max_iterations},
            ),
        )

    def _emit_next(self, execution_id: str, index: int, previous: dict[str, Any]) -> None:
        self._run.emit(
            EventName.LOOP_NEXT,
            LoopNextData(
                **self._header(execution_id),
                index=index,
                pre_loop_output=previous,
                created_at=int(time.time()),
            ),
        )

    def _emit_completed(
        self,
        execution_id: str,
        inputs: dict[str, Any],
        outputs: dict[str, Any] | None,
        status: NodeStatus,
        error: str | None,
        steps: int,
        tokens: int,
        created: float,
        started: float,
    ) -> None:
        self._run.emit(
            EventName.LOOP_COMPLETED,
            LoopCompletedData(
                **self._header(execution_id),
                inputs=inputs,
                outputs=outputs,
                status=status,
                error=error,
                elapsed_time=round(time.perf_counter() - started, 6),
                total_tokens=tokens,
                steps=steps,
                created_at=int(created),
                finished_at=int(time.time()),
            ),
        )
