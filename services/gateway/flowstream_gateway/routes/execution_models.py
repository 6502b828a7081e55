"""What the executions routes answer, for the OpenAPI document: the routes pass history's JSON
through (adding a few fields), so these models document the answers without filtering them."""

from __future__ import annotations

from typing import Any

from flowstream_shared.events import RunStatus
from flowstream_shared.history import NodeExecutionRecord, RunRecord, Summary
from pydantic import BaseModel, ConfigDict, Field


class ExecutionAccepted(BaseModel):
    """A queued run (`202`); follow it at `events_url`."""

    id: str
    execution_id: str
    task_id: str
    workflow_id: str
    workflow_version: int
    execution_name: str | None
    status: RunStatus
    inputs: dict[str, Any]
    debug: dict[str, Any] | None
    created_at: float
    deadline: float
    events_url: str


class ExecutionItem(RunRecord):
    model_config = ConfigDict(extra="allow")

    progress: float | None = Field(default=None, description="percent of steps done")
    elapsed_time: float | None = Field(default=None, description="seconds, counting while it runs")


class ExecutionPage(BaseModel):
    items: list[ExecutionItem]
    total: int
    page: int
    size: int
    pages: int


class ExecutionDetail(ExecutionItem):
    """Also `current_nodes`, `current_node`, `current_step` and, while paused,
    `paused_before` and `pause_reason`."""

    nodes: list[NodeExecutionRecord]


class ExecutionSummary(Summary):
    queue_depth: int = Field(description="runs waiting for an engine")
    at: float


class ControlAccepted(BaseModel):
    id: str
    result: str = Field(examples=["cancelling", "pausing", "resuming"])


def documented(model: type[BaseModel], status: int = 200) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": model}}


CONTROL_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"model": ControlAccepted},
    409: {"description": "The run has already finished"},
}
