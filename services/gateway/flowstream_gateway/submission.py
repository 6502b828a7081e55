"""What a request to run a workflow may say, whichever route it goes to, and the checks every
run submission makes before `RunService.start`.

Besides flowstream's `inputs`, a run request may be written as the orchestration documents that
preceded flowstream write it: `input_data` (the same as `inputs`), `execution_name`, and
`config: {async, timeout}` (`async: false` waits for the end; `timeout` replaces the workflow's
own deadline for this run). `debug: {step, breakpoints}` runs it under a debugger.
"""

from __future__ import annotations

from typing import Any

from flowstream_shared.commands import DebugOptions
from flowstream_shared.events import RunStatus
from flowstream_shared.inputs import InputError, input_declarations, validate_inputs
from flowstream_shared.workflow import WorkflowGraph
from pydantic import BaseModel, ConfigDict, Field

from flowstream_gateway.errors import invalid_param
from flowstream_gateway.runs import CACHE_FIELD, PRIORITY_FIELD, RunHandle
from flowstream_gateway.workflows import WorkflowRecord


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    run_async: bool | None = Field(
        default=None,
        alias="async",
        description="true: answer 202 at once; false: wait for the end and answer the result",
    )
    timeout: float | None = Field(
        default=None, gt=0, le=86400, description="seconds; replaces the workflow's own"
    )


class RunOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: dict[str, Any] | None = None
    input_data: dict[str, Any] | None = Field(default=None, description="the same as `inputs`")
    version: int | None = Field(
        default=None, ge=1, description="a stored version; latest if absent"
    )
    execution_name: str | None = Field(default=None, max_length=200)
    config: RunConfig | None = None
    debug: DebugOptions | None = Field(
        default=None,
        description="pause before each top-level node (`step`) or before `breakpoints`; "
        "continue with `POST /api/executions/{id}/step` or resume",
    )
    priority: int | None = PRIORITY_FIELD
    cache: bool = CACHE_FIELD

    def given_inputs(self) -> dict[str, Any]:
        both = self.inputs is not None and self.input_data is not None
        if both and self.inputs != self.input_data:
            raise invalid_param("inputs: `inputs` and `input_data` are the same and disagree")
        return dict(self.inputs or self.input_data or {})

    @property
    def timeout(self) -> float | None:
        return self.config.timeout if self.config else None

    @property
    def run_async(self) -> bool | None:
        return self.config.run_async if self.config else None


def checked_inputs(workflow: WorkflowRecord, options: RunOptions) -> dict[str, Any]:
    """The run's inputs, checked against START; and the debug options against the graph."""
    workflow.require_runnable()
    try:
        inputs = validate_inputs(input_declarations(workflow.definition), options.given_inputs())
    except InputError as exc:
        raise invalid_param(str(exc)) from exc
    if options.debug is not None:
        check_debug(workflow, options.debug)
    return inputs


def check_debug(workflow: WorkflowRecord, debug: DebugOptions) -> None:
    graph = WorkflowGraph(workflow.definition)
    for node_id in debug.breakpoints:
        if node_id not in graph.types:
            raise invalid_param(f"debug.breakpoints: no node `{node_id}` in this workflow")
        loop = graph.scope[node_id]
        if loop is not None:
            raise invalid_param(
                f"debug.breakpoints: `{node_id}` is inside the body of LOOP `{loop}`; a run "
                f"pauses between top-level nodes: break at `{loop}`"
            )


def accepted(
    handle: RunHandle, workflow: WorkflowRecord, inputs: dict[str, Any], name: str | None
) -> dict[str, Any]:
    """The answer to an asynchronous start (`202`)."""
    command = handle.command
    return {
        "id": command.run_id,
        "execution_id": command.run_id,
        "task_id": command.task_id,
        "workflow_id": workflow.id,
        "workflow_version": workflow.version,
        "execution_name": name,
        "status": RunStatus.PENDING.value,
        "priority": command.priority,
        "cached": command.cached_from is not None,
        "inputs": inputs,
        "debug": command.debug.model_dump() if command.debug else None,
        "created_at": command.created_at,
        "deadline": command.deadline,
        "events_url": f"/api/executions/{command.run_id}/events",
    }
