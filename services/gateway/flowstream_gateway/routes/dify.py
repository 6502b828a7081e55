"""Dify's workflow app service API (`/v1`), wire-compatible: Dify clients work unchanged."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from flowstream_shared.commands import ResponseMode, run_id_for_task
from flowstream_shared.events import RunStatus
from flowstream_shared.history import HistoryOp, ListQuery, RunQuery
from flowstream_shared.inputs import InputError, input_declarations, validate_inputs
from pydantic import BaseModel, ConfigDict, Field

from flowstream_gateway.attach import AttachedRun
from flowstream_gateway.auth import CurrentPrincipal, Principal
from flowstream_gateway.errors import ApiError, invalid_param, not_found
from flowstream_gateway.runs import IdempotencyKey, Submit
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


class StopRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    user: str | None = None


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
    try:
        inputs = validate_inputs(input_declarations(workflow.definition), body.inputs)
    except InputError as exc:
        raise invalid_param(str(exc)) from exc
    mode = body.response_mode or ResponseMode.BLOCKING
    handle = await services.runs.start(
        principal.user_id,
        workflow,
        inputs,
        Submit(mode, end_user=body.user, idempotency_key=idempotency_key),
    )
    services.metrics.runs_submitted.labels("dify", mode.value).inc()
    if mode == ResponseMode.BLOCKING:
        return await block_on_run(handle, services.runs)
    return stream_run(
        handle, services.runs, dify_framing(services.settings.dify_ping_s, body.user), "cancel"
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


@router.post("/workflows/tasks/{task_id}/stop", summary="Stop a run by its task id")
async def stop_task(
    task_id: str,
    principal: CurrentPrincipal,
    services: ServicesDep,
    body: StopRequest | None = None,
) -> dict[str, str]:
    try:
        run_id = run_id_for_task(task_id)
    except ValueError:
        raise not_found(f"task {task_id}") from None
    owner = await services.runs.owner(run_id)
    if owner is None or owner.user_id != principal.user_id:
        raise not_found(f"task {task_id}")
    principal.require_workflow(owner.workflow_id)
    await services.runs.cancel(run_id, "Stopped by user.")
    return {"result": "success"}


@router.get("/parameters", summary="The app's input form")
async def parameters(principal: CurrentPrincipal, services: ServicesDep) -> dict[str, Any]:
    workflow = await _app_workflow(principal, services, None)
    form = []
    for decl in input_declarations(workflow.definition):
        kind = {"string": "text-input", "integer": "number"}.get(decl.type, decl.type)
        field: dict[str, Any] = {
            "label": decl.description or decl.name,
            "variable": decl.name,
            "required": decl.required,
            "default": decl.default if decl.default is not None else "",
        }
        if decl.options is not None:
            field["options"] = decl.options
        if decl.max_length is not None:
            field["max_length"] = decl.max_length
        form.append({kind: field})
    return {"user_input_form": form, "file_upload": {}, "system_parameters": {}}


@router.get("/info", summary="The app's name, description and tags")
async def info(principal: CurrentPrincipal, services: ServicesDep) -> dict[str, Any]:
    workflow = await _app_workflow(principal, services, None)
    d = workflow.definition
    return {"name": d.name, "description": d.description, "tags": d.tags, "mode": "workflow"}


def _dify_run(run: dict[str, Any]) -> dict[str, Any]:
    elapsed = run.get("elapsed_ms")
    return {
        "id": run["id"],
        "workflow_id": run["workflow_id"],
        "status": run["status"],
        "inputs": run.get("inputs") or {},
        "outputs": run.get("outputs"),
        "error": run.get("error"),
        "total_steps": run.get("total_steps") or 0,
        "total_tokens": run.get("total_tokens") or 0,
        "created_at": int(run["created_at"]) if run.get("created_at") else None,
        "finished_at": int(run["finished_at"]) if run.get("finished_at") else None,
        "elapsed_time": round(elapsed / 1000, 6) if elapsed is not None else 0.0,
    }


@router.get("/workflows/run/{workflow_run_id}", summary="A run's detail")
async def run_detail(
    workflow_run_id: str, principal: CurrentPrincipal, services: ServicesDep
) -> dict[str, Any]:
    owner = await services.runs.owner(workflow_run_id)
    if owner is None or owner.user_id != principal.user_id:
        raise not_found(f"workflow run {workflow_run_id}")
    principal.require_workflow(owner.workflow_id)
    detail = await services.history.ask(
        HistoryOp.GET, RunQuery(user_id=principal.user_id, run_id=workflow_run_id)
    )
    return _dify_run(detail["run"])


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
    result = await services.history.ask(HistoryOp.LIST, query)
    data = []
    for run in result["items"]:
        end_user = run.get("end_user")
        data.append(
            {
                "id": run["id"],
                "workflow_run": {
                    **_dify_run(run),
                    "version": str(run.get("workflow_version") or ""),
                },
                "created_from": "service-api",
                "created_by_role": "end_user" if end_user else "account",
                "created_by_end_user": (
                    {
                        "id": end_user,
                        "type": "service_api",
                        "is_anonymous": False,
                        "session_id": end_user,
                    }
                    if end_user
                    else None
                ),
                "created_at": int(run["created_at"]) if run.get("created_at") else None,
            }
        )
    return {
        "page": page,
        "limit": limit,
        "total": result["total"],
        "has_more": page * limit < result["total"],
        "data": data,
    }


@router.get(
    "/workflow/{workflow_run_id}/events",
    summary="Re-attach to a run's stream (newer Dify), from its first event",
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def reattach(
    workflow_run_id: str,
    principal: CurrentPrincipal,
    services: ServicesDep,
    user: str | None = None,
) -> RunEventStream:
    owner = await services.runs.owner(workflow_run_id)
    if owner is None or owner.user_id != principal.user_id:
        raise not_found(f"workflow run {workflow_run_id}")
    principal.require_workflow(owner.workflow_id)
    source = AttachedRun(services.hub, owner, services.settings.deadline_grace_s)
    await source.open(services.js, None)
    # Watching, not owning: leaving a re-attached stream never stops the run.
    return stream_run(
        source, services.runs, dify_framing(services.settings.dify_ping_s), "continue"
    )
