"""History's records and the queries the gateway sends on `flowstream.history.<op>` (request/reply).

Every query carries the caller's user id: the history service scopes every answer to it, so
another user's run is indistinguishable from one that does not exist.

A query may also say how much the caller may already have seen (read-after-finish consistency,
ADR 0016): a run query the run's latest stored `seq`, other queries the event stream's and the
run index's latest sequences. History answers once it has recorded that much, or after a
bounded wait with what it has.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from flowstream_shared.events import RunStatus


class HistoryOp(StrEnum):
    GET = "get"
    LIST = "list"
    NODES = "nodes"
    TIMELINE = "timeline"
    STATS = "stats"
    SUMMARY = "summary"
    ACTIVE = "active"
    METRICS = "metrics"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class RunRecord(_Model):
    """`workflow_executions`: one per run."""

    id: str
    task_id: str | None = None
    workflow_id: str
    workflow_version: int | None = None
    user_id: str | None = None
    end_user: str | None = None
    execution_name: str | None = None
    inputs: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None
    status: RunStatus
    error: str | None = None
    elapsed_ms: float | None = None
    total_steps: int | None = None
    total_tokens: int | None = None
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    last_seq: int = 0
    # Set on an answer that carries a summary of the value instead of the value (too large).
    inputs_truncated: bool = False
    outputs_truncated: bool = False
    # The last `workflow_progress`: completed top-level steps as a percentage (100 once done).
    progress: float | None = None


class NodeExecutionRecord(_Model):
    """`node_executions`: one per node attempt (a retried attempt has its own record)."""

    id: str
    run_id: str
    workflow_id: str
    node_id: str
    node_type: str
    title: str | None = None
    index: int | None = None
    attempt: int = 0
    status: str
    inputs: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None
    error: str | None = None
    elapsed_ms: float | None = None
    created_at: float | None = None
    finished_at: float | None = None
    inputs_truncated: bool = False
    outputs_truncated: bool = False
    # Custom metrics the node emitted (`execution_metadata.metrics` of its `node_finished`).
    metrics: dict[str, float] | None = None


class TimelineEntry(_Model):
    """`execution_events`: the run's events in `seq` order."""

    seq: int
    event: str
    payload: dict[str, Any]
    # The payload is a summary: the event was too large to answer whole.
    truncated: bool = False


class RunQuery(_Model):
    user_id: str
    run_id: str
    # Answer once the run is recorded (0: as pending at least) with all its events up to this
    # per-run `seq`; None: answer with whatever is recorded now.
    applied_seq: int | None = Field(default=None, ge=0)
    # The stream sequence of that latest event: once the `history` consumer has acknowledged
    # that far, every replica's writes of the run are done.
    events_seq: int | None = Field(default=None, ge=0)
    # The timeline from the event after this `seq`, at most `limit` events (one page).
    after_seq: int = Field(default=0, ge=0)
    limit: int = Field(default=1000, ge=1, le=1000)


class SeenPositions(_Model):
    """What the caller may have seen of the event stream and of the run index: the stream
    sequence of `FLOWSTREAM_EVENTS`' latest event, the revision of `flowstream_runs`' latest
    entry. History answers once it has recorded both (None: no wait)."""

    events_seq: int | None = Field(default=None, ge=0)
    runs_seq: int | None = Field(default=None, ge=0)


class ListQuery(SeenPositions):
    user_id: str
    workflow_id: str | None = None
    status: RunStatus | None = None
    created_after: float | None = None
    created_before: float | None = None
    keyword: str | None = None
    end_user: str | None = None
    page: int = Field(default=1, ge=1)
    size: int = Field(default=20, ge=1, le=100)


class StatsQuery(SeenPositions):
    user_id: str
    workflow_id: str


class SummaryQuery(SeenPositions):
    user_id: str


class ActiveQuery(SeenPositions):
    user_id: str
    limit: int = Field(default=100, ge=1, le=1000)


class MetricsQuery(SeenPositions):
    user_id: str
    workflow_id: str


class RunPage(_Model):
    items: list[RunRecord]
    total: int
    page: int
    size: int
    pages: int


class RunDetail(_Model):
    run: RunRecord
    nodes: list[NodeExecutionRecord]
    # Only the first node executions are here: the rest did not fit one answer.
    nodes_truncated: bool = False


class TimelinePage(_Model):
    entries: list[TimelineEntry]
    # Ask again from here for the rest (None: this page ends the timeline).
    next_after_seq: int | None = None


class Bottleneck(_Model):
    """A node's part in its workflow's run time, over the stats window."""

    node_id: str
    title: str | None
    node_type: str
    executions: int
    avg_time: float  # seconds
    p95_time: float  # seconds
    total_time: float  # seconds
    # The node's time as a percentage of the run time of the runs it ran in (a LOOP's includes
    # its body's; nodes running side by side can together pass 100).
    share: float


class ErrorSummary(_Model):
    error_type: str  # the failing node's type, `timeout` or `workflow`
    count: int
    last_occurrence: float | None  # Unix seconds
    message: str | None  # the latest error of this type
    node_id: str | None = None  # the node of that latest error, when a node failed


class WorkflowStats(_Model):
    workflow_id: str
    total: int
    finished: int
    succeeded: int
    # Percent of finished runs that succeeded (0 to 100); `success_ratio` is the same, 0 to 1.
    success_rate: float | None
    success_ratio: float | None
    avg_duration_ms: float | None
    p95_duration_ms: float | None
    slowest_node: dict[str, Any] | None
    errors_by_type: dict[str, int]
    # The same figures as the orchestration monitoring view names them.
    total_executions: int
    avg_execution_time: float | None  # seconds
    bottlenecks: list[Bottleneck]
    errors: list[ErrorSummary]


class ActiveNode(_Model):
    node_id: str
    title: str | None
    started_at: float | None


class ActiveRun(_Model):
    run: RunRecord
    running_nodes: list[ActiveNode]


class CustomMetric(_Model):
    name: str
    node_id: str
    count: int
    sum: float
    avg: float
    min: float
    max: float
    last: float
    last_at: float | None


class Summary(_Model):
    active_runs: int
    runs_last_minute: int
    # Accepted runs no engine has started yet.
    pending_runs: int = 0


class HistoryError(_Model):
    code: str
    message: str
    status: int


class HistoryReply(_Model):
    """Every reply: exactly one of `result` and `error`."""

    result: Any = None
    error: HistoryError | None = None
    # The query named what its caller may have seen, and history could not confirm within its
    # wait that it has recorded all of it: the result may be behind the event log.
    behind: bool = False
