"""The queue: the caller's waiting runs, and changing a waiting run's priority."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from flowstream_shared import subjects
from pydantic import BaseModel, ConfigDict, Field

from flowstream_gateway.auth import CurrentPrincipal
from flowstream_gateway.errors import ApiError
from flowstream_gateway.queue import find_queued, is_picked_up, move_to_band
from flowstream_gateway.routes.executions import owned_run
from flowstream_gateway.services import ServicesDep

router = APIRouter(tags=["queue"])


@router.get(
    "/api/queue",
    summary="Waiting runs, in the order they start",
    description=(
        "The caller's runs that have not started: `waiting_for` is `engine` (queued in its "
        "priority band; `position` 1 is the next run an engine takes) or the concurrency limit "
        "the run waits for (`position` in that limit's line). An admin (a JWT with "
        '`"admin": true`, or a user in `FLOWSTREAM_QUEUE_ADMINS`) sees every caller\'s runs '
        "with `all=true`."
    ),
)
async def list_queue(
    principal: CurrentPrincipal, services: ServicesDep, all: bool = False
) -> dict[str, Any]:
    if all and not principal.admin:
        raise ApiError(403, "forbidden", "all=true needs an admin token")
    owner = None if all else subjects.owner_token(principal.user_id)
    items = await services.queue.waiting(owner)
    if principal.workflow_id is not None:
        items = [item for item in items if item["workflow_id"] == principal.workflow_id]
    return {"items": items, "total": len(items)}


class ExecutionPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    priority: int = Field(ge=0, le=subjects.PRIORITY_BANDS - 1)


@router.patch(
    "/api/executions/{run_id}",
    summary="Change a waiting run's priority",
    description=(
        "Moves a run that no engine has taken yet to its new priority band (409 once an "
        "engine has it). The run still executes once."
    ),
)
async def patch_execution(
    run_id: str, body: ExecutionPatch, principal: CurrentPrincipal, services: ServicesDep
) -> dict[str, Any]:
    await owned_run(run_id, principal, services)
    queued = await find_queued(services.nc, run_id)
    if queued is None or await is_picked_up(services.js, queued):
        raise ApiError(409, "conflict", f"execution {run_id} is no longer waiting in the queue")
    if queued.band != body.priority:
        await move_to_band(services.nc, services.js, queued, body.priority)
    return {"id": run_id, "status": "pending", "priority": body.priority}
