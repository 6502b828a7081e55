"""Workflow statistics, computed from the recent runs a store returns (any store, any backend)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from statistics import fmean

from flowstream_shared.events import RunStatus
from flowstream_shared.history import (
    Bottleneck,
    ErrorSummary,
    NodeExecutionRecord,
    RunRecord,
    WorkflowStats,
)

FINISHED = {RunStatus.SUCCEEDED, RunStatus.PARTIAL_SUCCEEDED, RunStatus.FAILED, RunStatus.STOPPED}
BOTTLENECKS_SHOWN = 10


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


@dataclass(frozen=True)
class _Failure:
    node_type: str
    node_id: str
    error: str | None
    at: float | None


def _error_type(run: RunRecord, failed_nodes: dict[str, _Failure]) -> str:
    """What failed: the failing node's type, a timeout, or the run itself."""
    if run.error and "timed out" in run.error and run.id not in failed_nodes:
        return "timeout"
    failure = failed_nodes.get(run.id)
    return failure.node_type if failure else "workflow"


def _errors(runs: list[RunRecord], failed_nodes: dict[str, _Failure]) -> list[ErrorSummary]:
    grouped: dict[str, list[RunRecord]] = defaultdict(list)
    for run in runs:
        if run.status == RunStatus.FAILED:
            grouped[_error_type(run, failed_nodes)].append(run)
    summaries: list[ErrorSummary] = []
    for error_type, failed in grouped.items():
        latest = max(failed, key=lambda r: r.finished_at or r.created_at or 0.0)
        node = failed_nodes.get(latest.id)
        summaries.append(
            ErrorSummary(
                error_type=error_type,
                count=len(failed),
                last_occurrence=latest.finished_at or latest.created_at,
                message=(node.error if node and node.error else latest.error),
                node_id=node.node_id if node else None,
            )
        )
    summaries.sort(key=lambda e: (-e.count, e.error_type))
    return summaries


def _bottlenecks(finished: list[RunRecord], nodes: list[NodeExecutionRecord]) -> list[Bottleneck]:
    run_ms = {r.id: r.elapsed_ms for r in finished if r.elapsed_ms}
    times: dict[str, list[float]] = defaultdict(list)
    runs_of: dict[str, set[str]] = defaultdict(set)
    about: dict[str, NodeExecutionRecord] = {}
    for node in nodes:
        if node.elapsed_ms is None or node.status == "retry" or node.run_id not in run_ms:
            continue
        times[node.node_id].append(node.elapsed_ms)
        runs_of[node.node_id].add(node.run_id)
        about.setdefault(node.node_id, node)
    found: list[Bottleneck] = []
    for node_id, values in times.items():
        run_total = sum(run_ms[r] for r in runs_of[node_id])
        total = sum(values)
        found.append(
            Bottleneck(
                node_id=node_id,
                title=about[node_id].title,
                node_type=about[node_id].node_type,
                executions=len(values),
                avg_time=round(fmean(values) / 1000, 6),
                p95_time=round(_p95(values) / 1000, 6),
                total_time=round(total / 1000, 6),
                share=round(100 * total / run_total, 2) if run_total else 0.0,
            )
        )
    found.sort(key=lambda b: (-b.share, -b.total_time, b.node_id))
    return found[:BOTTLENECKS_SHOWN]


def workflow_stats(
    workflow_id: str, runs: list[RunRecord], nodes: list[NodeExecutionRecord]
) -> WorkflowStats:
    finished = [r for r in runs if r.status in FINISHED]
    succeeded = [
        r for r in finished if r.status in (RunStatus.SUCCEEDED, RunStatus.PARTIAL_SUCCEEDED)
    ]
    durations = [r.elapsed_ms for r in finished if r.elapsed_ms is not None]
    by_node: dict[str, list[float]] = defaultdict(list)
    titles: dict[str, str | None] = {}
    failed_nodes: dict[str, _Failure] = {}
    for node in nodes:
        if node.elapsed_ms is not None and node.status != "retry":
            by_node[node.node_id].append(node.elapsed_ms)
            titles.setdefault(node.node_id, node.title)
        if node.status == "failed":
            failed_nodes[node.run_id] = _Failure(
                node.node_type, node.node_id, node.error, node.finished_at
            )
    slowest = max(by_node.items(), key=lambda item: fmean(item[1]), default=None)
    errors = Counter(_error_type(r, failed_nodes) for r in finished if r.status == RunStatus.FAILED)
    ratio = len(succeeded) / len(finished) if finished else None
    avg_ms = fmean(durations) if durations else None
    return WorkflowStats(
        workflow_id=workflow_id,
        total=len(runs),
        finished=len(finished),
        succeeded=len(succeeded),
        success_rate=round(100 * ratio, 2) if ratio is not None else None,
        success_ratio=round(ratio, 4) if ratio is not None else None,
        avg_duration_ms=round(avg_ms, 3) if avg_ms is not None else None,
        p95_duration_ms=round(_p95(durations), 3) if durations else None,
        slowest_node=(
            {
                "node_id": slowest[0],
                "title": titles.get(slowest[0]),
                "avg_ms": round(fmean(slowest[1]), 3),
                "avg_time": round(fmean(slowest[1]) / 1000, 6),
                "runs": len(slowest[1]),
            }
            if slowest
            else None
        ),
        errors_by_type=dict(errors),
        total_executions=len(runs),
        avg_execution_time=round(avg_ms / 1000, 6) if avg_ms is not None else None,
        bottlenecks=_bottlenecks(finished, nodes),
        errors=_errors(finished, failed_nodes),
    )
