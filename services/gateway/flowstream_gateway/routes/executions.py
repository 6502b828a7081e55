"""Executions: start asynchronously, find, inspect, follow, pause, resume and cancel runs."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import JSONResponse
from flowstream_shared import subjects
from flowstream_shared.commands import ResponseMode, RunOwner
from flowstream_shared.events import RunStatus
from flowstream_shared.history import (
    HistoryOp,
    ListQuery,
    StatsQuery,
    SummaryQuery,
    WorkflowStats,
)
from pydantic import BaseModel, ConfigDict, Field

from flowstream_gateway.attach import AttachedRun
from flowstream_gateway.auth import CurrentPrincipal, Principal
from flowstream_gateway.consistent_reads import caught_up_run, unrecorded_run
from flowstream_gateway.errors import ApiError, invalid_param, not_found
from flowstream_gateway.execution_status import elapsed_time, progress, running_nodes, status_fields
from flowstream_gateway.live_state import LiveState, live_state, state_of
from flowstream_gateway.queue import find_queued, is_picked_up, move_to_band
from flowstream_gateway.routes.execution_models import (
    CONTROL_RESPONSES,
    ExecutionAccepted,
    ExecutionDetail,
    ExecutionPage,
    ExecutionSummary,
    documented,
)
from flowstream_gateway.runs import IdempotencyKey, Submit
from flowstream_gateway.seed_views import history_entries, run_status_filter, seed_status
from flowstream_gateway.services import Services, ServicesDep
from flowstream_gateway.sse import RunEventStream
from flowstream_gateway.streaming import api_framing, block_on_run, stream_run
from flowstream_gateway.submission import RunOptions, accepted, checked_inputs

router = APIRouter(prefix="/api/executions", tags=["executions"])
stats_router = APIRouter(prefix="/api/workflows", tags=["executions"])

STATUS_QUERY = (
    "`pending`, `running`, `paused`, `succeeded` (or `completed`), `partial-succeeded`, "
    "`failed`, `stopped` (or `cancelled`)"
)


class ExecutionRequest(RunOptions):
    """Starts a run and answers `202` at once, unless `config.async` is false (then it waits
    and answers the result)."""

    workflow_id: str


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: str = Field(description="`paused`, `running` or `cancelled` (also `stopped`)")
    reason: str | None = Field(default=None, max_length=1_000)


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


async def cancel(services: Services, run_id: str, reason: str) -> None:
    """Stop a run. One still queued moves to the top band, so an engine ends it `stopped` now
    rather than when its turn would have come (every run ends with its `workflow_finished`)."""
    await services.runs.cancel(run_id, reason)
    queued = await find_queued(services.nc, run_id)
    top = subjects.PRIORITY_BANDS - 1
    if queued is not None and queued.band != top and not await is_picked_up(services.js, queued):
        await move_to_band(services.nc, services.js, queued, top)


async def start_run(
    workflow_id: str,
    body: RunOptions,
    principal: Principal,
    services: Services,
    channel: str,
    idempotency_key: str | None,
) -> Response:
    """Every asynchronous-first route: `202` with the execution, or (`config.async: false`)
    the finished run, as the blocking mode of `/api/workflow/{id}/execute` answers it."""
    principal.require_workflow(workflow_id)
    workflow = await services.workflows.get(principal.user_id, workflow_id, body.version)
    inputs = checked_inputs(workflow, body)
    wait = body.run_async is False
    handle = await services.runs.start(
        principal.user_id,
        workflow,
        inputs,
        Submit(
            ResponseMode.BLOCKING,
            follow=wait,
            execution_name=body.execution_name,
            idempotency_key=idempotency_key,
            run_timeout=body.timeout,
            debug=body.debug,
            priority=body.priority,
            app_key=principal.key_id,
            use_cache=body.cache,
        ),
    )
    services.metrics.runs_submitted.labels(channel, "blocking" if wait else "async").inc()
    if wait:
        return await block_on_run(handle, services.runs)
    return JSONResponse(accepted(handle, workflow, inputs, body.execution_name), status_code=202)


@router.post(
    "",
    status_code=202,
    summary="Start a run and return at once",
    responses=documented(ExecutionAccepted, 202),
)
async def start_execution(
    body: ExecutionRequest,
    principal: CurrentPrincipal,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    return await start_run(
        body.workflow_id, body, principal, services, "executions", idempotency_key
    )


@stats_router.post(
    "/{workflow_id}/execute",
    status_code=202,
    summary="Start a run of this workflow and return at once",
    responses=documented(ExecutionAccepted, 202),
    description="The same as `POST /api/executions` with the workflow in the path.",
)
async def execute_workflow(
    workflow_id: str,
    body: RunOptions,
    principal: CurrentPrincipal,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    return await start_run(workflow_id, body, principal, services, "workflows", idempotency_key)


@router.get(
    "",
    summary="List the caller's runs, newest first",
    response_model=None,
    responses=documented(ExecutionPage),
)
async def list_executions(
    principal: CurrentPrincipal,
    services: ServicesDep,
    workflow_id: str | None = None,
    status: Annotated[str | None, Query(description=STATUS_QUERY)] = None,
    created_after: float | None = None,
    created_before: float | None = None,
    page: Annotated[int, Query(ge=1)] = 1,
    size: Annotated[int, Query(ge=1, le=100)] = 10,
) -> Any:
    if principal.workflow_id is not None:
        if workflow_id not in (None, principal.workflow_id):
            raise not_found(f"workflow {workflow_id}")
        workflow_id = principal.workflow_id
    try:
        wanted = run_status_filter(status) if status is not None else None
    except ValueError as exc:
        raise invalid_param(f"status: must be one of {STATUS_QUERY}") from exc
    query = ListQuery(
        user_id=principal.user_id,
        workflow_id=workflow_id,
        status=wanted,
        created_after=created_after,
        created_before=created_before,
        page=page,
        size=size,
    )
    found = await services.reads.ask(HistoryOp.LIST, query)
    now = time.time()
    for item in found["items"]:
        item["progress"] = progress(item)
        item["elapsed_time"] = elapsed_time(item, now)
    return found


@router.get(
    "/summary",
    summary="Active runs, pending runs, runs in the last minute, queue depth",
    response_model=None,
    responses=documented(ExecutionSummary),
)
async def summary(principal: CurrentPrincipal, services: ServicesDep) -> dict[str, Any]:
    counts, depth = await asyncio.gather(
        services.reads.ask(HistoryOp.SUMMARY, SummaryQuery(user_id=principal.user_id)),
        services.runs.queue_depth(),
    )
    return {**counts, "queue_depth": depth, "at": time.time()}


@router.get(
    "/{run_id}",
    summary="A run with its node executions, progress and running nodes",
    response_model=None,
    responses=documented(ExecutionDetail),
    description=(
        "Also `progress` (percent), `current_nodes` / `current_node` / `current_step` (the "
        "titles of the nodes running now), `elapsed_time` (seconds, still counting while it "
        "runs) and, while paused, `paused_before` (the node ids it holds) and `pause_reason`; "
        "while it waits (`pending`), `queue_position` (1: next), `waiting_for` (`engine`, or "
        "the concurrency limit it waits for) and `priority`. Values too large for one answer "
        "are summarized: `inputs_truncated` / `outputs_truncated` on the run and on each node "
        "execution say so, and `nodes_truncated` that only the first node executions are "
        "listed. Once any client has seen the run finish, this reflects it."
    ),
)
async def get_execution(run_id: str, principal: CurrentPrincipal, services: ServicesDep) -> Any:
    owner = await owned_run(run_id, principal, services)
    read = await services.reads.run(HistoryOp.GET, owner)
    last = read.last
    detail: dict[str, Any]
    if read.result is None:  # not recorded yet: what the run index and the event log say
        detail = {"run": unrecorded_run(owner, last), "nodes": [], "nodes_truncated": False}
    elif read.behind:  # history behind the log: the log's word on status and end
        detail = {**read.result, "run": caught_up_run(read.result["run"], last)}
    else:
        detail = read.result
    run = detail["run"]
    view = {**run, **status_fields(run, running_nodes(detail["nodes"]), time.time())}
    if run.get("status") == RunStatus.PAUSED.value:
        state = state_of(last) if last is not None else await live_state(services.nc, owner)
        view["paused_before"] = state.paused_before
        view["pause_reason"] = state.pause_reason
    if run.get("status") == RunStatus.PENDING.value:
        view.update(await _place_in_queue(services, run_id))
    return {**view, "nodes": detail["nodes"], "nodes_truncated": detail["nodes_truncated"]}


async def _place_in_queue(services: Services, run_id: str) -> dict[str, Any]:
    """Where a pending run waits, as the queue view shows it: `queue_position` (also `position`:
    1 is the next run an engine takes, or its place in the line of the concurrency limit it
    waits for), `waiting_for`, `priority`, `age_s`; position 0 once an engine has taken it (it
    starts next)."""
    waiting = await services.queue.describe(run_id)
    if waiting is None:
        return {"queue_position": 0, "position": 0, "waiting_for": None}
    place = {k: waiting[k] for k in ("position", "waiting_for", "priority", "age_s")}
    return {"queue_position": waiting["position"], **place}


@router.get(
    "/{run_id}/history",
    summary="The run's events in order (its timeline), a page at a time",
    description=(
        "Each entry: `seq`, `event`, `payload`, and `timestamp`, `status`, `message`. At most "
        "`limit` events after `after_seq`, and never more than one answer holds; when more "
        'follow, a `Link: <…?after_seq=N>; rel="next"` header points at the next page. An '
        "event too large for a page of its own comes summarized, with `truncated: true`."
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
    owner = await owned_run(run_id, principal, services)
    read = await services.reads.run(HistoryOp.TIMELINE, owner, after_seq=after_seq, limit=limit)
    page: dict[str, Any]
    if read.result is None or read.behind:  # not recorded (yet): straight from the event log
        entries = [e for e in await services.reads.log_timeline(owner) if e["seq"] > after_seq]
        following = entries[limit - 1]["seq"] if len(entries) > limit else None
        page = {"entries": entries[:limit], "next_after_seq": following}
    else:
        page = read.result
    following = page["next_after_seq"]
    if following is not None:
        response.headers["Link"] = (
            f'</api/executions/{run_id}/history?after_seq={following}&limit={limit}>; rel="next"'
        )
    return history_entries(page["entries"])


@router.put(
    "/{run_id}",
    status_code=202,
    summary="Set a run's status: paused, running or cancelled (409 once it has ended)",
    description=(
        "`paused` pauses, `running` resumes, `cancelled` (or `stopped`) cancels, exactly as "
        "the `/pause`, `/resume` and `/cancel` routes do. Asking for the status a run already "
        "has changes nothing. A run that has ended cannot change: `409`."
    ),
)
async def change_status(
    run_id: str, body: StatusChange, principal: CurrentPrincipal, services: ServicesDep
) -> JSONResponse:
    wanted = body.status.lower()
    if wanted not in ("paused", "running", "cancelled", "stopped"):
        raise invalid_param("status: can be set to `paused`, `running` or `cancelled`")
    owner = await owned_run(run_id, principal, services)
    state = await live_state(services.nc, owner)
    if state.finished:
        raise ApiError(
            409,
            "conflict",
            f"execution {run_id} has already ended ({seed_status(state.status.value)}); "
            f"it cannot become {wanted}",
        )
    result = "unchanged"
    if wanted == "paused" and state.status != RunStatus.PAUSED:
        await services.runs.pause(run_id)
        result = "pausing"
    elif wanted == "running" and state.status == RunStatus.PAUSED:
        await services.runs.resume(run_id)
        result = "resuming"
    elif wanted in ("cancelled", "stopped"):
        await cancel(services, run_id, body.reason or "Stopped by user.")
        result = "cancelling"
    return JSONResponse(
        {
            "id": run_id,
            "execution_id": run_id,
            "status": "cancelled" if wanted == "stopped" else wanted,
            "previous_status": seed_status(state.status.value),
            "result": result,
        },
        status_code=202,
    )


@router.post(
    "/{run_id}/step",
    status_code=202,
    summary="Run the nodes a paused run holds, then pause before the next ones",
    description=(
        "For a run paused by its debugger (or by a pause): starts every node it holds; once "
        "they have run, it pauses again before the nodes they made ready (the run is in step "
        "mode from then on; resume to leave it). `409` unless the run is paused."
    ),
)
async def step_execution(
    run_id: str, principal: CurrentPrincipal, services: ServicesDep
) -> JSONResponse:
    owner = await owned_run(run_id, principal, services)
    state: LiveState = await live_state(services.nc, owner)
    if state.status != RunStatus.PAUSED or state.pause_seq is None:
        raise ApiError(
            409,
            "conflict",
            f"execution {run_id} is {seed_status(state.status.value)}, not paused: nothing to step",
        )
    await services.runs.step(run_id, state.pause_seq)
    return JSONResponse(
        {
            "id": run_id,
            "result": "stepping",
            "nodes": state.paused_before or [],
            "pause_seq": state.pause_seq,
        },
        status_code=202,
    )


@router.post(
    "/{run_id}/cancel",
    status_code=202,
    summary="Cancel a run (409 when it has ended)",
    responses=CONTROL_RESPONSES,
)
async def cancel_execution(
    run_id: str, principal: CurrentPrincipal, services: ServicesDep
) -> JSONResponse:
    await unfinished_run(run_id, principal, services)
    await cancel(services, run_id, "Stopped by user.")
    return JSONResponse({"id": run_id, "result": "cancelling"}, status_code=202)


@router.post(
    "/{run_id}/pause",
    status_code=202,
    summary="Pause a run at its next node boundary (409 when it has ended)",
    responses=CONTROL_RESPONSES,
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
    responses=CONTROL_RESPONSES,
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
    ticket = services.open_stream(principal.user_id, principal.key_id)
    try:
        source = AttachedRun(services.hub, owner, services.settings.deadline_grace_s)
        await source.open(services.js, last_event_id)
    except BaseException:
        ticket.release()
        raise
    # Watching, not owning: a client leaving an attached stream never cancels the run.
    return stream_run(source, services.runs, api_framing(services.settings), "continue", ticket)


@stats_router.get(
    "/{workflow_id}/stats",
    summary="Totals, success rate, durations, errors",
    response_model=None,
    responses=documented(WorkflowStats),
)
async def workflow_stats(
    workflow_id: str, principal: CurrentPrincipal, services: ServicesDep
) -> Any:
    principal.require_workflow(workflow_id)
    await services.workflows.get(principal.user_id, workflow_id)
    return await services.reads.ask(
        HistoryOp.STATS, StatsQuery(user_id=principal.user_id, workflow_id=workflow_id)
    )
