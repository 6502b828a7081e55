"""Monitoring: the caller's active runs with where they are, runs per minute, and system load."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query
from flowstream_shared import subjects
from flowstream_shared.history import ActiveQuery, HistoryOp, MetricsQuery, SummaryQuery

from flowstream_gateway.auth import CurrentPrincipal
from flowstream_gateway.errors import invalid_param
from flowstream_gateway.execution_status import status_fields
from flowstream_gateway.seed_views import seed_status
from flowstream_gateway.services import Services, ServicesDep

router = APIRouter(prefix="/api/monitor", tags=["monitoring"])
metrics_router = APIRouter(prefix="/api/workflows", tags=["monitoring"])

LimitQuery = Annotated[int, Query(ge=1, le=1000, description="at most this many runs")]


def _active_view(entry: dict[str, Any], now: float) -> dict[str, Any]:
    run = entry["run"]
    return {
        "id": run["id"],
        "execution_id": run["id"],
        "workflow_id": run["workflow_id"],
        "workflow_version": run.get("workflow_version"),
        "execution_name": run.get("execution_name"),
        "status": run["status"],
        "seed_status": seed_status(run["status"]),
        "created_at": run.get("created_at"),
        "started_at": run.get("started_at"),
        **status_fields(run, entry["running_nodes"], now),
    }


async def _active(services: Services, user_id: str, limit: int) -> list[dict[str, Any]]:
    found = await services.reads.ask(HistoryOp.ACTIVE, ActiveQuery(user_id=user_id, limit=limit))
    now = time.time()
    return [_active_view(entry, now) for entry in found]


async def system_load(services: Services) -> dict[str, Any]:
    """Cluster-wide: runs waiting for an engine, runs the engines hold, and how full they are
    against `FLOWSTREAM_ENGINE_CAPACITY`."""

    async def band(consumer: str) -> tuple[int, int]:
        try:
            info = await services.js.consumer_info(subjects.RUNS_STREAM, consumer)
        except Exception:
            return 0, 0
        return int(info.num_pending or 0), int(info.num_ack_pending or 0)

    consumers = [
        subjects.ENGINE_CONSUMER,
        *(subjects.band_consumer(b) for b in range(subjects.PRIORITY_BANDS)),
    ]
    counts = await asyncio.gather(*(band(c) for c in consumers))
    queued, executing = sum(q for q, _ in counts), sum(e for _, e in counts)
    capacity = services.settings.engine_capacity or services.settings.engine_concurrency
    return {
        "queue_depth": queued,
        "executing": executing,
        "engine_capacity": capacity,
        "engine_utilisation": round(min(100.0, 100.0 * executing / capacity), 1),
    }


@router.get(
    "/active",
    summary="The caller's running and paused runs, with the nodes running now",
    description="Each with `current_node`, `current_step`, `progress` and `elapsed_time`.",
)
async def active(
    principal: CurrentPrincipal, services: ServicesDep, limit: LimitQuery = 100
) -> dict[str, Any]:
    runs = await _active(services, principal.user_id, limit)
    return {"active_executions": runs, "total": len(runs), "timestamp": time.time()}


@router.get(
    "/realtime",
    summary="Active runs, runs started in the last minute, queue depth and engine load",
)
async def realtime(
    principal: CurrentPrincipal, services: ServicesDep, limit: LimitQuery = 100
) -> dict[str, Any]:
    runs = await _active(services, principal.user_id, limit)
    counts = await services.reads.ask(HistoryOp.SUMMARY, SummaryQuery(user_id=principal.user_id))
    return {
        "active_executions": runs,
        "active_count": len(runs),
        "executions_per_minute": counts["runs_last_minute"],
        "system_load": await system_load(services),
        "timestamp": time.time(),
    }


@metrics_router.get(
    "/{workflow_id}/metrics",
    summary="Custom metrics the workflow's nodes emitted (`type=custom`)",
    description=(
        "Per metric name and node, over the workflow's most recent runs: `count`, `sum`, "
        "`avg`, `min`, `max`, `last`, `last_at`. Per-node timings are in `/stats`."
    ),
)
async def workflow_metrics(
    workflow_id: str,
    principal: CurrentPrincipal,
    services: ServicesDep,
    type: Annotated[str, Query(description="`custom`")] = "custom",
) -> dict[str, Any]:
    if type != "custom":
        raise invalid_param(
            "type: only `custom` metrics are served here; node timings are in "
            f"/api/workflows/{workflow_id}/stats (`bottlenecks`)"
        )
    principal.require_workflow(workflow_id)
    await services.workflows.get(principal.user_id, workflow_id)
    metrics = await services.reads.ask(
        HistoryOp.METRICS, MetricsQuery(user_id=principal.user_id, workflow_id=workflow_id)
    )
    return {"workflow_id": workflow_id, "type": "custom", "metrics": metrics}
