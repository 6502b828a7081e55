"""Dify's workflow app service API (`/v1`), wire-compatible: Dify clients work unchanged.

Where `/v1` and `/api` differ, Dify's semantics win here (docs/adr/0030-dify-semantics-on-v1.md):
a dropped stream leaves the run going, inputs are converted as Dify converts them, node types are
Dify's ids, and a stop always answers success. A run of another end user, another app or another
owner does not exist: every refusal looks the same.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response
from flowstream_shared.commands import ResponseMode, RunOwner, run_id_for_task
from flowstream_shared.events import RunStatus
from flowstream_shared.history import HistoryOp, ListQuery
from flowstream_shared.inputs import InputError, input_declarations, validate_inputs
from pydantic import BaseModel, ConfigDict, Field

from flowstream_gateway import dify_bodies
from flowstream_gateway.auth import CurrentPrincipal, Principal
from flowstream_gateway.dify_inputs import coerce_dify_inputs
from flowstream_gateway.dify_runs import DifyAttachedRun, last_stored
from flowstream_gateway.dify_wire import dify_frame
from flowstream_gateway.errors import ApiError, invalid_param, not_found
from flowstream_gateway.runs import CACHE_FIELD, PRIORITY_FIELD, IdempotencyKey, Submit
from flowstream_gateway.services import Services, ServicesDep
from flowstream_gateway.sse import RunEventStream
from flowstream_gateway.streaming import block_on_run, dify_framing, stream_run
from flowstream_gateway.workflows import WorkflowRecord

router = APIRouter(prefix="/v1", tags=["dify compatible"])


class DifyRunRequest(BaseModel):
    # Dify ignores keys it does not know; so do we here.
    model_config = ConfigDict(extra="ignore")

    inputs: dict[str, Any]
    response_mode: ResponseMode | None = Field(default=None, description="omitted means blocking")
    user: str = Field(min_length=1, max_length=256)
    files: list[Any] | None = None
    priority: int | None = PRIORITY_FIELD
    cache: bool = CACHE_FIELD


class StopRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    user: str | None = Field(default=None, max_length=256)


async def _app_workflow(
    principal: Principal, services: Services, workflow_id: str | None
) -> WorkflowRecord:
    if workflow_id is None:
        if principal.workflow_id is None:
            raise ApiError(400, "not_workflow_app", "this route needs an app API key")
        workflow_id = principal.workflow_id
    principal.require_workflow(workflow_id)
    return await services.workflows.get(principal.user_id, workflow_id)


async def _run(
    body: DifyRunRequest,
    principal: Principal,
    services: Services,
    workflow_id: str | None,
    idempotency_key: str | None,
) -> Response:
    workflow = await _app_workflow(principal, services, workflow_id)
    workflow.require_runnable()
    declarations = input_declarations(workflow.definition)
    try:
        inputs = validate_inputs(declarations, coerce_dify_inputs(declarations, body.inputs))
    except InputError as exc:
        raise invalid_param(str(exc)) from exc
    mode = body.response_mode or ResponseMode.BLOCKING
    streaming = mode == ResponseMode.STREAMING
    ticket = services.open_stream(principal.user_id, principal.key_id) if streaming else None
    try:
        handle = await services.runs.start(
            principal.user_id,
            workflow,
            inputs,
            Submit(
                mode,
                end_user=body.user,
                idempotency_key=idempotency_key,
                priority=body.priority,
                app_key=principal.key_id,
                use_cache=body.cache,
            ),
        )
    except BaseException:
        if ticket is not None:
            ticket.release()
        raise
    services.metrics.runs_submitted.labels("dify", mode.value).inc()
    if not streaming:
        return await block_on_run(handle, services.runs)
    # Dify keeps a run going when its stream drops; the client re-attaches (`reattach` below).
    return stream_run(
        handle,
        services.runs,
        dify_framing(services.settings, body.user),
        "continue",
        ticket,
    )


@router.post("/workflows/run", summary="Run the API key's workflow")
async def run_app_workflow(
    body: DifyRunRequest,
    principal: CurrentPrincipal,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    return await _run(body, principal, services, None, idempotency_key)


@router.post("/workflows/{workflow_id}/run", summary="Run a workflow by id")
async def run_workflow(
    workflow_id: str,
    body: DifyRunRequest,
    principal: CurrentPrincipal,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    return await _run(body, principal, services, workflow_id, idempotency_key)


async def _own_run(principal: Principal, services: Services, run_id: str) -> RunOwner | None:
    """The run when the caller may see it: its owner, and through an app key its app only."""
    owner = await services.runs.owner(run_id)
    if owner is None or owner.user_id != principal.user_id:
        return None
    if principal.workflow_id is not None and principal.workflow_id != owner.workflow_id:
        return None
    return owner


def _run_end_user(owner: RunOwner) -> str:
    """Who the run was started for, as its `sys.user_id` says: the end user, else the owner."""
    return owner.end_user or owner.user_id


@router.post("/workflows/tasks/{task_id}/stop", summary="Stop a run by its task id")
async def stop_task(
    task_id: str,
    principal: CurrentPrincipal,
    services: ServicesDep,
    body: Annotated[StopRequest | None, Body()] = None,
) -> dict[str, str]:
    """Always `{"result": "success"}`, as in Dify: a task that is unknown, finished, or not the
    caller's (another owner, app or end user) is left alone, and nothing tells them apart."""
    if body is None or not body.user:
        raise invalid_param("user is required")
    try:
        run_id = run_id_for_task(task_id)
    except ValueError:
        return {"result": "success"}
    owner = await _own_run(principal, services, run_id)
    if (
        owner is not None
        and _run_end_user(owner) == body.user
        and not await services.runs.has_finished(owner)
    ):
        await services.runs.cancel(run_id, "Stopped by user.")
    return {"result": "success"}


@router.get("/parameters", summary="The app's input form and features")
async def parameters(principal: CurrentPrincipal, services: ServicesDep) -> dict[str, Any]:
    return dify_bodies.parameters(await _app_workflow(principal, services, None))


@router.get("/info", summary="The app's name, description, tags and author")
async def info(principal: CurrentPrincipal, services: ServicesDep) -> dict[str, Any]:
    return dify_bodies.info(await _app_workflow(principal, services, None))


@router.get("/site", summary="The app's web app settings")
async def site(principal: CurrentPrincipal, services: ServicesDep) -> dict[str, Any]:
    return dify_bodies.site(await _app_workflow(principal, services, None))


@router.get("/meta", summary="The app's tool icons")
async def meta(principal: CurrentPrincipal, services: ServicesDep) -> dict[str, Any]:
    await _app_workflow(principal, services, None)
    return dify_bodies.meta()


@router.get("/workflows/run/{workflow_run_id}", summary="A run's detail")
async def run_detail(
    workflow_run_id: str, principal: CurrentPrincipal, services: ServicesDep
) -> dict[str, Any]:
    owner = await _own_run(principal, services, workflow_run_id)
    if owner is None:
        raise not_found(f"workflow run {workflow_run_id}")
    # The same consistent read as /api (ADR 0016): once the run's end was seen, history's
    # record shows it. A run history has not recorded within its wait (or is away) is read
    # from the event log's own start and end events.
    read = await services.reads.run(HistoryOp.GET, owner)
    if read.result is not None and not read.behind:
        return dify_bodies.run_detail(read.result["run"])
    started, finished = await asyncio.gather(
        last_stored(services.nc, owner, "workflow_started"),
        last_stored(services.nc, owner, "workflow_finished"),
    )
    return dify_bodies.detail_from_events(owner, started, finished)


def _timestamp(value: str | None, name: str) -> float | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise invalid_param(f"{name} must be an ISO 8601 date-time") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


@router.get("/workflows/logs", summary="The app's run logs, newest first")
async def logs(
    principal: CurrentPrincipal,
    services: ServicesDep,
    keyword: str | None = None,
    status: RunStatus | None = None,
    created_at__before: str | None = None,
    created_at__after: str | None = None,
    created_by_end_user_session_id: str | None = None,
    page: Annotated[int, Query(ge=1)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    query = ListQuery(
        user_id=principal.user_id,
        workflow_id=principal.workflow_id,
        status=status,
        created_before=_timestamp(created_at__before, "created_at__before"),
        created_after=_timestamp(created_at__after, "created_at__after"),
        keyword=keyword,
        end_user=created_by_end_user_session_id,
        page=page,
        size=limit,
    )
    result = await services.reads.ask(HistoryOp.LIST, query)
    data = [dify_bodies.log_entry(run) for run in result["items"]]
    return {
        "page": page,
        "limit": limit,
        "total": result["total"],
        "has_more": page * limit < result["total"],
        "data": data,
    }


@router.get(
    "/workflow/{workflow_run_id}/events",
    summary="Re-attach to a run's stream (newer Dify)",
    description=(
        "A finished run answers its `workflow_finished` alone. A run still going is streamed "
        "from its first event, then live; unless `continue_on_pause`, the stream ends at a "
        "pause. Leaving the stream never stops the run."
    ),
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def reattach(
    workflow_run_id: str,
    principal: CurrentPrincipal,
    services: ServicesDep,
    user: Annotated[str | None, Query(max_length=256)] = None,
    include_state_snapshot: bool = False,
    continue_on_pause: bool = False,
) -> Response:
    # `include_state_snapshot` is accepted and always honoured: the event log is the snapshot,
    # and a re-attached stream replays it whole.
    if not user:
        raise invalid_param("user is required")
    owner = await _own_run(principal, services, workflow_run_id)
    if owner is None or _run_end_user(owner) != user:
        raise not_found(f"workflow run {workflow_run_id}")
    finished = await last_stored(services.nc, owner, "workflow_finished")
    if finished is not None:
        return Response(
            dify_frame("workflow_finished", finished),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache"},
        )
    ticket = services.open_stream(principal.user_id, principal.key_id)
    try:
        source = DifyAttachedRun(
            services.hub, owner, services.settings.deadline_grace_s, continue_on_pause
        )
        await source.open(services.js, None)
    except BaseException:
        ticket.release()
        raise
    # Watching, not owning: leaving a re-attached stream never stops the run.
    stream: RunEventStream = stream_run(
        source,
        services.runs,
        dify_framing(services.settings, user),
        "continue",
        ticket,
    )
    return stream
