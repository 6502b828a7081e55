"""Executions: start asynchronously, find, inspect, follow, pause, resume and cancel runs."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import JSONResponse
from flowstream_shared.commands import ResponseMode, RunOwner
from flowstream_shared.events import RunStatus
from flowstream_shared.history import HistoryOp, ListQuery, RunQuery, StatsQuery, SummaryQuery
from flowstream_shared.inputs import InputError, input_declarations, validate_inputs
from pydantic import BaseModel, ConfigDict, Field

from flowstream_gateway.attach import AttachedRun
from flowstream_gateway.auth import CurrentPrincipal, Principal
from flowstream_gateway.errors import ApiError, invalid_param, not_found
from flowstream_gateway.runs import IdempotencyKey, Submit
from flowstream_gateway.services import Services, ServicesDep
from flowstream_gateway.sse import RunEventStream
from flowstream_gateway.streaming import api_framing, stream_run

router = APIRouter(prefix="/api/executions", tags=["executions"])
stats_router = APIRouter(prefix="/api/workflows", tags=["executions"])


class ExecutionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workflow_id: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    version: int | None = Field(
        default=None, ge=1, description="a stored version; latest if absent"
    )
    execution_name: str | None = Field(default=None, max_length=200)


async def owned_run(run_id: str, principal: Principal, services: Services) -> RunOwner:
    """The caller's run from the run index (any replica, recorded or not yet); else 404."""
    owner = await services.runs.owner(run_id)
    if owner is None or owner.user_id != principal.user_id:
        raise not_found(f"execution {run_id}")
    principal.require_workflow(owner.workflow_id)
    return owner


async def unfinished_run(run_id: str, principal: Principal, services: Services) -> RunOwner:
    """The caller's run, still able to be controlled; 409 once it has ended."""
    owner = await owned_run(run_id, principal, services)
    if await services.runs.has_finished(owner):
        raise ApiError(409, "conflict", f"execution {run_id} has already finished")
    return owner


@router.post("", status_code=202, summary="Start a run and return at once")
async def start_execution(
    body: ExecutionRequest,
    principal: CurrentPrincipal,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    principal.require_workflow(body.workflow_id)
    workflow = await services.workflows.get(principal.user_id, body.workflow_id, body.version)
    workflow.require_runnable()
    try:
        inputs = validate_inputs(input_declarations(workflow.definition), body.inputs)
    except InputError as exc:
        raise invalid_param(str(exc)) from exc
    handle = await services.runs.start(
        principal.user_id,
        workflow,
        inputs,
        Submit(
            ResponseMode.BLOCKING,
            follow=False,
            execution_name=body.execution_name,
            idempotency_key=idempotency_key,
        ),
    )
    services.metrics.runs_submitted.labels("executions", "async").inc()
    command = handle.command
    return {
        "id": command.run_id,
        "task_id": command.task_id,
        "workflow_id": workflow.id,
        "workflow_version": workflow.version,
        "execution_name": body.execution_name,
        "status": RunStatus.PENDING.value,
        "inputs": inputs,
        "created_at": command.created_at,
        "events_url": f"/api/executions/{command.run_id}/events",
    }


@router.get("", summary="List the caller's runs, newest first")
async def list_executions(
    principal: CurrentPrincipal,
    services: ServicesDep,
    workflow_id: str | None = None,
    status: RunStatus | None = None,
    created_after: float | None = None,
    created_before: float | None = None,
    page: Annotated[int, Query(ge=1)] = 1,
    size: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Any:
    if principal.workflow_id is not None:
        if workflow_id not in (None, principal.workflow_id):
            raise not_found(f"workflow {workflow_id}")
        workflow_id = principal.workflow_id
    query = ListQuery(
        user_id=principal.user_id,
        workflow_id=workflow_id,
        status=status,
        created_after=created_after,
        created_before=created_before,
        page=page,
        size=size,
    )
    return await services.history.ask(HistoryOp.LIST, query)


@router.get("/summary", summary="Active runs, runs in the last minute, queue depth")
async def summary(principal: CurrentPrincipal, services: ServicesDep) -> dict[str, Any]:
    counts = await services.history.ask(HistoryOp.SUMMARY, SummaryQuery(user_id=principal.user_id))
    return {**counts, "queue_depth": await services.runs.queue_depth(), "at": time.time()}


@router.get(
    "/{run_id}",
    summary="A run with its node executions",
    description=(
        "Values too large for one answer are summarized: `inputs_truncated` / "
        "`outputs_truncated` on the run and on each node execution say so, and "
        "`nodes_truncated` that only the first node executions are listed."
    ),
)
async def get_execution(run_id: str, principal: CurrentPrincipal, services: ServicesDep) -> Any:
    await owned_run(run_id, principal, services)
    detail = await services.history.ask(
        HistoryOp.GET, RunQuery(user_id=principal.user_id, run_id=run_id)
    )
    return {**detail["run"], "nodes": detail["nodes"], "nodes_truncated": detail["nodes_truncated"]}


@router.get(
    "/{run_id}/history",
    summary="The run's events in order (its timeline), a page at a time",
    description=(
        "At most `limit` events after `after_seq`, and never more than one answer holds; when "
        'more follow, a `Link: <…?after_seq=N>; rel="next"` header points at the next page. '
        "An event too large for a page of its own comes summarized, with `truncated: true`."
    ),
)
async def execution_history(
    run_id: str,
    principal: CurrentPrincipal,
    services: ServicesDep,
    response: Response,
    after_seq: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
) -> Any:
    await owned_run(run_id, principal, services)
    page = await services.history.ask(
        HistoryOp.TIMELINE,
        RunQuery(user_id=principal.user_id, run_id=run_id, after_seq=after_seq, limit=limit),
    )
    following = page["next_after_seq"]
    if following is not None:
        response.headers["Link"] = (
            f'</api/executions/{run_id}/history?after_seq={following}&limit={limit}>; rel="next"'
        )
    return page["entries"]


@router.post("/{run_id}/cancel", status_code=202, summary="Cancel a run (409 when it has ended)")
async def cancel_execution(
    run_id: str, principal: CurrentPrincipal, services: ServicesDep
) -> JSONResponse:
    await unfinished_run(run_id, principal, services)
    await services.runs.cancel(run_id, "Stopped by user.")
    return JSONResponse({"id": run_id, "result": "cancelling"}, status_code=202)


@router.post(
    "/{run_id}/pause",
    status_code=202,
    summary="Pause a run at its next node boundary (409 when it has ended)",
    description=(
        "Nothing new starts; running nodes are not interrupted (a DELAY keeps counting). Once "
        "nothing runs the run emits `workflow_paused`. Pausing a paused run changes nothing; "
        "the run's deadline still applies while it is paused."
    ),
)
async def pause_execution(
    run_id: str, principal: CurrentPrincipal, services: ServicesDep
) -> JSONResponse:
    await unfinished_run(run_id, principal, services)
    await services.runs.pause(run_id)
    return JSONResponse({"id": run_id, "result": "pausing"}, status_code=202)


@router.post(
    "/{run_id}/resume",
    status_code=202,
    summary="Resume a paused run (409 when it has ended)",
    description=(
        "The run emits `workflow_resumed` and starts what was ready. Resuming a run that is "
        "not paused changes nothing; a resume before the pause took effect cancels it."
    ),
)
async def resume_execution(
    run_id: str, principal: CurrentPrincipal, services: ServicesDep
) -> JSONResponse:
    await unfinished_run(run_id, principal, services)
    await services.runs.resume(run_id)
    return JSONResponse({"id": run_id, "result": "resuming"}, status_code=202)


@router.get(
    "/{run_id}/events",
    summary="Follow a run over SSE, from its start or from Last-Event-ID",
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def execution_events(
    run_id: str,
    principal: CurrentPrincipal,
    services: ServicesDep,
    last_event_id: Annotated[int | None, Header(alias="Last-Event-ID", ge=0)] = None,
) -> RunEventStream:
    owner = await owned_run(run_id, principal, services)
    source = AttachedRun(services.hub, owner, services.settings.deadline_grace_s)
    await source.open(services.js, last_event_id)
    # Watching, not owning: a client leaving an attached stream never cancels the run.
    return stream_run(
        source, services.runs, api_framing(services.settings.sse_keepalive_s), "continue"
    )


@stats_router.get("/{workflow_id}/stats", summary="Totals, success rate, durations, errors")
async def workflow_stats(
    workflow_id: str, principal: CurrentPrincipal, services: ServicesDep
) -> Any:
    principal.require_workflow(workflow_id)
    await services.workflows.get(principal.user_id, workflow_id)
    return await services.history.ask(
        HistoryOp.STATS, StatsQuery(user_id=principal.user_id, workflow_id=workflow_id)
    )
