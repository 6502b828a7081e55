"""Workflow definitions: create, list, get, delete."""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from flowstream_shared.workflow import WorkflowDefinition
from pydantic import BaseModel

from flowstream_gateway.auth import CurrentPrincipal
from flowstream_gateway.services import ServicesDep
from flowstream_gateway.workflows import WorkflowRecord

router = APIRouter(prefix="/api/workflows", tags=["workflows"])


class WorkflowSummary(BaseModel):
    id: str
    name: str
    description: str
    tags: list[str]
    version: int
    created_at: int
    updated_at: int


class WorkflowOut(WorkflowSummary):
    definition: dict[str, Any]


class WorkflowPage(BaseModel):
    items: list[WorkflowSummary]
    total: int
    page: int
    size: int
    pages: int


def _summary(record: WorkflowRecord) -> dict[str, Any]:
    d = record.definition
    return {
        "id": record.id,
        "name": d.name,
        "description": d.description,
        "tags": d.tags,
        "version": record.version,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


def _full(record: WorkflowRecord) -> WorkflowOut:
    return WorkflowOut(
        **_summary(record),
        definition=record.definition.model_dump(mode="json", by_alias=True),
    )


@router.post("", status_code=201, response_model=WorkflowOut, summary="Create a workflow")
async def create_workflow(
    definition: WorkflowDefinition, principal: CurrentPrincipal, services: ServicesDep
) -> WorkflowOut:
    principal.require_user_token()
    return _full(await services.workflows.create(principal.user_id, definition))


@router.get("", response_model=WorkflowPage, summary="List the caller's workflows")
async def list_workflows(
    principal: CurrentPrincipal,
    services: ServicesDep,
    tag: str | None = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    page: Annotated[int, Query(ge=1)] = 1,
    size: Annotated[int, Query(ge=1, le=100)] = 20,
) -> WorkflowPage:
    found = services.workflows.search(principal.user_id, tag, q)
    if principal.workflow_id is not None:
        found = [r for r in found if r.id == principal.workflow_id]
    items = found[(page - 1) * size : page * size]
    return WorkflowPage(
        items=[WorkflowSummary(**_summary(r)) for r in items],
        total=len(found),
        page=page,
        size=size,
        pages=math.ceil(len(found) / size),
    )


@router.get("/{workflow_id}", response_model=WorkflowOut, summary="Get a workflow")
async def get_workflow(
    workflow_id: str, principal: CurrentPrincipal, services: ServicesDep
) -> WorkflowOut:
    principal.require_workflow(workflow_id)
    return _full(await services.workflows.get(principal.user_id, workflow_id))


@router.delete("/{workflow_id}", status_code=204, summary="Delete a workflow")
async def delete_workflow(
    workflow_id: str, principal: CurrentPrincipal, services: ServicesDep
) -> Response:
    principal.require_user_token()
    await services.workflows.delete(principal.user_id, workflow_id)
    return Response(status_code=204)
