"""The run events of DESIGN §4: one schema for SSE, WebSocket, NATS and history.

Top-level keys follow Dify's order (`event`, `workflow_run_id`, `task_id`, `data`), then `seq`, the
per-run gap-free sequence number. Consumers ignore fields they do not know, so fields can be added.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class EventName(StrEnum):
    WORKFLOW_STARTED = "workflow_started"
    NODE_STARTED = "node_started"
    TEXT_CHUNK = "text_chunk"
    NODE_RETRY = "node_retry"
    NODE_FINISHED = "node_finished"
    WORKFLOW_PAUSED = "workflow_paused"
    WORKFLOW_RESUMED = "workflow_resumed"
    WORKFLOW_PROGRESS = "workflow_progress"
    WORKFLOW_FINISHED = "workflow_finished"
    ERROR = "error"
    LOOP_STARTED = "loop_started"
    LOOP_NEXT = "loop_next"
    LOOP_COMPLETED = "loop_completed"
    PARALLEL_BRANCH_STARTED = "parallel_branch_started"
    PARALLEL_BRANCH_FINISHED = "parallel_branch_finished"


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"
    PARTIAL_SUCCEEDED = "partial-succeeded"


TERMINAL_RUN_STATUSES = frozenset(
    {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.STOPPED, RunStatus.PARTIAL_SUCCEEDED}
)


class NodeStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXCEPTION = "exception"
    STOPPED = "stopped"
    RETRY = "retry"


def _absent(value: object) -> bool:
    """Optional markers are left out of events that do not carry them."""
    return value is None


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class WorkflowStartedData(_Payload):
    id: str
    workflow_id: str
    workflow_version: int
    inputs: dict[str, Any]
    created_at: int
    # The run's owner travels with the run, so its records never depend on a lookup.
    user_id: str | None = None
    # A result-cache hit: the run replays `cached_from`'s events and executes nothing.
    cached: bool | None = Field(default=None, exclude_if=_absent)
    cached_from: str | None = Field(default=None, exclude_if=_absent)


class NodeStartedData(_Payload):
    id: str
    node_id: str
    node_type: str
    title: str
    index: int
    predecessor_node_id: str | None
    inputs: dict[str, Any] | None
    created_at: int
    # Dify's field: flowstream never truncates what an event carries.
    inputs_truncated: bool = False


class TextChunkData(_Payload):
    text: str
    from_variable_selector: list[str]


class NodeFinishedData(_Payload):
    id: str
    node_id: str
    node_type: str
    title: str
    index: int
    predecessor_node_id: str | None = None
    inputs: dict[str, Any] | None
    outputs: dict[str, Any] | None
    status: NodeStatus
    error: str | None
    elapsed_time: float
    execution_metadata: dict[str, Any] | None = None
    created_at: int
    finished_at: int
    # Dify's fields, for clients that read them: what a node did besides its outputs, and files
    # (flowstream nodes produce none).
    process_data: dict[str, Any] | None = None
    inputs_truncated: bool = False
    process_data_truncated: bool = False
    outputs_truncated: bool = False
    files: list[dict[str, Any]] = Field(default_factory=list)


class NodeRetryData(NodeFinishedData):
    retry_index: int


class WorkflowStatusData(_Payload):
    """`workflow_paused` and `workflow_resumed`. A pause says why (`pause`: asked for;
    `step` / `breakpoint`: a debugged run) and which nodes it holds (`node_ids`)."""

    id: str
    status: RunStatus
    created_at: int
    reason: str | None = Field(default=None, exclude_if=lambda v: v is None)
    node_ids: list[str] | None = Field(default=None, exclude_if=lambda v: v is None)


class WorkflowProgressData(_Payload):
    completed_steps: int
    total_steps: int
    percent: float


class WorkflowFinishedData(_Payload):
    id: str
    workflow_id: str
    status: RunStatus
    outputs: dict[str, Any] | None
    error: str | None
    elapsed_time: float
    total_tokens: int
    total_steps: int
    created_at: int
    finished_at: int
    user_id: str | None = None
    # Dify's fields: nodes whose error an `on_error` branch handled, files among the outputs
    # (none), and who started the run (`{"id", "user"}` for an end user, else the account).
    exceptions_count: int = 0
    files: list[dict[str, Any]] = Field(default_factory=list)
    created_by: dict[str, Any] | None = None
    cached: bool | None = Field(default=None, exclude_if=_absent)
    cached_from: str | None = Field(default=None, exclude_if=_absent)


class ErrorData(_Payload):
    code: str
    status: int
    message: str


class LoopStartedData(_Payload):
    """Dify's `loop_started`; `id` is the LOOP node's execution id."""

    id: str
    node_id: str
    node_type: str
    title: str
    created_at: int
    inputs: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)


class LoopNextData(_Payload):
    """Before every iteration but the first: `index` is the iteration about to run (from 0)."""

    id: str
    node_id: str
    node_type: str
    title: str
    index: int
    pre_loop_output: Any = None
    created_at: int


class LoopCompletedData(_Payload):
    id: str
    node_id: str
    node_type: str
    title: str
    inputs: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None
    status: NodeStatus
    error: str | None = None
    elapsed_time: float
    total_tokens: int = 0
    execution_metadata: dict[str, Any] | None = None
    steps: int
    created_at: int
    finished_at: int


class ParallelBranchStartedData(_Payload):
    """Dify's shape. `parallel_id` is the PARALLEL node's id, `parallel_start_node_id` the node
    its branch starts at; the parent fields name the branch the PARALLEL itself runs in."""

    parallel_id: str
    parallel_start_node_id: str
    parent_parallel_id: str | None = None
    parent_parallel_start_node_id: str | None = None
    iteration_id: str | None = None
    loop_id: str | None = None
    created_at: int


class ParallelBranchFinishedData(_Payload):
    parallel_id: str
    parallel_start_node_id: str
    parent_parallel_id: str | None = None
    parent_parallel_start_node_id: str | None = None
    iteration_id: str | None = None
    loop_id: str | None = None
    status: NodeStatus  # succeeded, failed or stopped
    error: str | None = None
    created_at: int


class RunEventBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    event: EventName
    workflow_run_id: str
    task_id: str
    data: Any
    seq: int = Field(ge=1, description="Per-run sequence number, from 1, without gaps")


class WorkflowStarted(RunEventBase):
    event: Literal[EventName.WORKFLOW_STARTED] = EventName.WORKFLOW_STARTED
    data: WorkflowStartedData


class NodeStarted(RunEventBase):
    event: Literal[EventName.NODE_STARTED] = EventName.NODE_STARTED
    data: NodeStartedData


class TextChunk(RunEventBase):
    event: Literal[EventName.TEXT_CHUNK] = EventName.TEXT_CHUNK
    data: TextChunkData


class NodeRetry(RunEventBase):
    event: Literal[EventName.NODE_RETRY] = EventName.NODE_RETRY
    data: NodeRetryData


class NodeFinished(RunEventBase):
    event: Literal[EventName.NODE_FINISHED] = EventName.NODE_FINISHED
    data: NodeFinishedData


class WorkflowPaused(RunEventBase):
    event: Literal[EventName.WORKFLOW_PAUSED] = EventName.WORKFLOW_PAUSED
    data: WorkflowStatusData


class WorkflowResumed(RunEventBase):
    event: Literal[EventName.WORKFLOW_RESUMED] = EventName.WORKFLOW_RESUMED
    data: WorkflowStatusData


class WorkflowProgress(RunEventBase):
    event: Literal[EventName.WORKFLOW_PROGRESS] = EventName.WORKFLOW_PROGRESS
    data: WorkflowProgressData


class WorkflowFinished(RunEventBase):
    event: Literal[EventName.WORKFLOW_FINISHED] = EventName.WORKFLOW_FINISHED
    data: WorkflowFinishedData


class ErrorEvent(RunEventBase):
    event: Literal[EventName.ERROR] = EventName.ERROR
    data: ErrorData


class LoopStarted(RunEventBase):
    event: Literal[EventName.LOOP_STARTED] = EventName.LOOP_STARTED
    data: LoopStartedData


class LoopNext(RunEventBase):
    event: Literal[EventName.LOOP_NEXT] = EventName.LOOP_NEXT
    data: LoopNextData


class LoopCompleted(RunEventBase):
    event: Literal[EventName.LOOP_COMPLETED] = EventName.LOOP_COMPLETED
    data: LoopCompletedData


class ParallelBranchStarted(RunEventBase):
    event: Literal[EventName.PARALLEL_BRANCH_STARTED] = EventName.PARALLEL_BRANCH_STARTED
    data: ParallelBranchStartedData


class ParallelBranchFinished(RunEventBase):
    event: Literal[EventName.PARALLEL_BRANCH_FINISHED] = EventName.PARALLEL_BRANCH_FINISHED
    data: ParallelBranchFinishedData


RunEvent = Annotated[
    WorkflowStarted
    | NodeStarted
    | TextChunk
    | NodeRetry
    | NodeFinished
    | WorkflowPaused
    | WorkflowResumed
    | WorkflowProgress
    | WorkflowFinished
    | ErrorEvent
    | LoopStarted
    | LoopNext
    | LoopCompleted
    | ParallelBranchStarted
    | ParallelBranchFinished,
    Field(discriminator="event"),
]

run_event_adapter: TypeAdapter[RunEvent] = TypeAdapter(RunEvent)


def parse_event(payload: bytes | str) -> RunEvent:
    return run_event_adapter.validate_json(payload)


EVENT_TYPES: dict[EventName, type[RunEventBase]] = {
    EventName.WORKFLOW_STARTED: WorkflowStarted,
    EventName.NODE_STARTED: NodeStarted,
    EventName.TEXT_CHUNK: TextChunk,
    EventName.NODE_RETRY: NodeRetry,
    EventName.NODE_FINISHED: NodeFinished,
    EventName.WORKFLOW_PAUSED: WorkflowPaused,
    EventName.WORKFLOW_RESUMED: WorkflowResumed,
    EventName.WORKFLOW_PROGRESS: WorkflowProgress,
    EventName.WORKFLOW_FINISHED: WorkflowFinished,
    EventName.ERROR: ErrorEvent,
    EventName.LOOP_STARTED: LoopStarted,
    EventName.LOOP_NEXT: LoopNext,
    EventName.LOOP_COMPLETED: LoopCompleted,
    EventName.PARALLEL_BRANCH_STARTED: ParallelBranchStarted,
    EventName.PARALLEL_BRANCH_FINISHED: ParallelBranchFinished,
}
