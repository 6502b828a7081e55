"""Workflow statistics, computed from the recent runs a store returns (any store, any backend)."""

from __future__ import annotations

from collections import Counter, defaultdict
from statistics import fmean

from flowstream_shared.events import RunStatus
from flowstream_shared.history import NodeExecutionRecord, RunRecord, WorkflowStats

FINISHED = {RunStatus.SUCCEEDED, RunStatus.PARTIAL_SUCCEEDED, RunStatus.FAILED, RunStatus.STOPPED}


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _error_type(run: RunRecord, failed_nodes: dict[str, str]) -> str:
    """What failed: the failing node's type, a timeout, or the run itself."""
    if run.error and "timed out" in run.error and run.id not in failed_nodes:
        return "timeout"
    return failed_nodes.get(run.id, "workflow")


def workflow_stats(
    workflow_id: str, runs: list[RunRecord], nodes: list[NodeExecutionRecord]
) -> WorkflowStats:
    finished = [r for r in runs if r.status in FINISHED]
    succeeded = [
        r for r in finished if r.status in (RunStatus.SUCCEEDED, RunStatus.PARTIAL_SUCCEEDED)
    ]
    durations = [r.elapsed_ms for r in finished if r.elapsed_ms is not None]
    by_node: dict[str, list[float]] = defaultdict(list)
    failed_nodes: dict[str, str] = {}
    for node in nodes:
        if node.elapsed_ms is not None and node.status != "retry":
            by_node[node.node_id].append(node.elapsed_ms)
        if node.status == "failed":
            failed_nodes[node.run_id] = node.node_type
    slowest = max(by_node.items(), key=lambda item: fmean(item[1]), default=None)
    errors = Counter(_error_type(r, failed_nodes) for r in finished if r.status == RunStatus.FAILED)
    return WorkflowStats(
        workflow_id=workflow_id,
        total=len(runs),
        finished=len(finished),
        succeeded=len(succeeded),
        success_rate=round(len(succeeded) / len(finished), 4) if finished else None,
        avg_duration_ms=round(fmean(durations), 3) if durations else None,
        p95_duration_ms=round(_p95(durations), 3) if durations else None,
        slowest_node=(
            {"node_id": slowest[0], "avg_ms": round(fmean(slowest[1]), 3), "runs": len(slowest[1])}
            if slowest
            else None
        ),
        errors_by_type=dict(errors),
    )
