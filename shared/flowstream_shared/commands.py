"""Commands sent to the engine: a run to execute, and control of a running run."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from flowstream_shared.workflow import WorkflowDefinition


class ResponseMode(StrEnum):
    STREAMING = "streaming"
    BLOCKING = "blocking"


class WorkflowSnapshot(BaseModel):
    """The exact definition a run executes: later edits of the workflow never change a run."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    workflow_id: str
    version: int = Field(ge=1)
    definition: WorkflowDefinition


class RunCommand(BaseModel):
    """Published on `flowstream.runs.submit`; one per run."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    run_id: str
    task_id: str
    workflow: WorkflowSnapshot
    inputs: dict[str, Any]
    user_id: str
    response_mode: ResponseMode = ResponseMode.STREAMING
    created_at: float = Field(description="Unix seconds when the run was accepted")
    deadline: float = Field(description="Unix seconds after which the run fails with a timeout")
    priority: int = 0


class ControlAction(StrEnum):
    CANCEL = "cancel"
    PAUSE = "pause"
    RESUME = "resume"


class ControlCommand(BaseModel):
    """Stored in KV `flowstream_control` under the run id and published on its control subject."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    action: ControlAction
    reason: str = ""
