"""Dify's workflow app service API (`/v1`), wire-compatible: Dify clients work unchanged."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from flowstream_shared.commands import ResponseMode, run_id_for_task
from flowstream_shared.inputs import InputError, input_declarations, validate_inputs
from pydantic import BaseModel, ConfigDict, Field

from flowstream_gateway.auth import CurrentPrincipal, Principal
from flowstream_gateway.errors import ApiError, invalid_param, not_found
from flowstream_gateway.services import Services, ServicesDep
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
    body: DifyRunRequest, principal: Principal, services: Services, workflow_id: str | None
) -> Response:
    workflow = await _app_workflow(principal, services, workflow_id)
    try:
        inputs = validate_inputs(input_declarations(workflow.definition), body.inputs)
    except InputError as exc:
        raise invalid_param(str(exc)) from exc
    mode = body.response_mode or ResponseMode.BLOCKING
    handle = await services.runs.start(
        principal.user_id, workflow, inputs, mode, end_user=body.user
    )
    services.metrics.runs_submitted.labels("dify", mode.value).inc()
    if mode == ResponseMode.BLOCKING:
        return await block_on_run(handle, services.runs)
    return stream_run(handle, services.runs, dify_framing(services.settings.dify_ping_s), "cancel")


@router.post("/workflows/run", summary="Run the API key's workflow")
async def run_app_workflow(
    body: DifyRunRequest, principal: CurrentPrincipal, services: ServicesDep
) -> Response:
    return await _run(body, principal, services, None)


@router.post("/workflows/{workflow_id}/run", summary="Run a workflow by id")
async def run_workflow(
    workflow_id: str, body: DifyRunRequest, principal: CurrentPrincipal, services: ServicesDep
) -> Response:
    return await _run(body, principal, services, workflow_id)


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
