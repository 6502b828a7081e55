"""Workflow definitions: create, list, read any version, replace, build step by step, export."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Body, Query, Response
from flowstream_shared.workflow import Connection, ConnectionInput, NodeInput, WorkflowDefinition
from pydantic import BaseModel

from flowstream_gateway.auth import CurrentPrincipal
from flowstream_gateway.definition_secrets import mask_definition
from flowstream_gateway.services import ServicesDep
from flowstream_gateway.workflow_edits import parse
from flowstream_gateway.workflows import WorkflowRecord

router = APIRouter(prefix="/api/workflows", tags=["workflows"])

T = TypeVar("T")

PageQuery = Annotated[int, Query(ge=1)]
SizeQuery = Annotated[int, Query(ge=1, le=100)]
VersionQuery = Annotated[
    int | None, Query(ge=1, description="a version number; omitted means the latest")
]
DraftQuery = Annotated[
    bool,
    Query(description="store an incomplete graph as a draft (not runnable) instead of a 400"),
]


class WorkflowSummary(BaseModel):
    id: str
    name: str
    description: str
    tags: list[str]
    version: int
    draft: bool
    created_at: int
    updated_at: int


class WorkflowOut(WorkflowSummary):
    problems: list[str]
    definition: dict[str, Any]


class NodeChange(WorkflowOut):
    node: dict[str, Any]


class ConnectionChange(WorkflowOut):
    connection: dict[str, Any] = {}


def _schema_of(model: str, description: str) -> dict[str, Any]:
    """A request body documented as `model` that the route reads as a plain object."""
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model}"}}},
        }
    }


def _node_out(record: WorkflowRecord, node_id: str) -> NodeChange:
    node = record.definition.node(node_id)
    return NodeChange(**_full(record).model_dump(), node=node.model_dump(mode="json"))


def _connection_out(record: WorkflowRecord, connection: Connection) -> ConnectionChange:
    out = connection.model_dump(mode="json", by_alias=True)
    out["id"] = connection.key  # always addressable: `PUT/DELETE …/connections/{id}`
    return ConnectionChange(**_full(record).model_dump(), connection=out)


class WorkflowPage(BaseModel):
    items: list[WorkflowSummary]
    total: int
    page: int
    size: int
    pages: int


class VersionSummary(BaseModel):
    version: int
    name: str
    draft: bool
    node_count: int
    created_at: int


class VersionPage(BaseModel):
    items: list[VersionSummary]
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
        "draft": record.draft,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


def _shown(record: WorkflowRecord) -> WorkflowDefinition:
    """What any answer shows of a definition: literal secrets masked."""
    return mask_definition(record.definition, record.id, record.version)


def _full(record: WorkflowRecord) -> WorkflowOut:
    return WorkflowOut(
        **_summary(record),
        problems=record.problems,
        definition=_shown(record).model_dump(mode="json", by_alias=True),
    )


def _version(record: WorkflowRecord) -> VersionSummary:
    return VersionSummary(
        version=record.version,
        name=record.definition.name,
        draft=record.draft,
        node_count=len(record.definition.nodes),
        created_at=record.updated_at,
    )


# Masking and encoding a definition of this many nodes takes the event loop milliseconds.
_ENCODE_INLINE_NODES = 100


async def _answer(record: WorkflowRecord, status_code: int = 200) -> Response:
    """A definition's answer, built off the event loop when the definition is large."""

    def encode() -> bytes:
        return _full(record).model_dump_json().encode()

    if len(record.definition.nodes) <= _ENCODE_INLINE_NODES:
        body = encode()
    else:
        body = await asyncio.to_thread(encode)
    return Response(body, status_code=status_code, media_type="application/json")


def _page(found: Sequence[T], page: int, size: int) -> tuple[list[T], dict[str, int]]:
    meta = {"total": len(found), "page": page, "size": size, "pages": math.ceil(len(found) / size)}
    return list(found[(page - 1) * size : page * size]), meta


@router.post("", status_code=201, response_model=WorkflowOut, summary="Create a workflow")
async def create_workflow(
    definition: WorkflowDefinition,
    principal: CurrentPrincipal,
    services: ServicesDep,
    draft: DraftQuery = False,
) -> Response:
    principal.require_user_token()
    return await _answer(await services.workflows.create(principal.user_id, definition, draft), 201)


@router.post(
    "/import",
    status_code=201,
    response_model=WorkflowOut,
    summary="Import an exported definition as a new workflow",
)
async def import_workflow(
    definition: WorkflowDefinition,
    principal: CurrentPrincipal,
    services: ServicesDep,
    draft: DraftQuery = False,
) -> Response:
    principal.require_user_token()
    return await _answer(await services.workflows.create(principal.user_id, definition, draft), 201)


@router.get("", response_model=WorkflowPage, summary="List the caller's workflows")
async def list_workflows(
    principal: CurrentPrincipal,
    services: ServicesDep,
    tag: str | None = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    page: PageQuery = 1,
    size: SizeQuery = 20,
) -> WorkflowPage:
    found = services.workflows.search(principal.user_id, tag, q)
    if principal.workflow_id is not None:
        found = [r for r in found if r.id == principal.workflow_id]
    items, meta = _page(found, page, size)
    return WorkflowPage(items=[WorkflowSummary(**_summary(r)) for r in items], **meta)


@router.get("/{workflow_id}", response_model=WorkflowOut, summary="Get a workflow (any version)")
async def get_workflow(
    workflow_id: str,
    principal: CurrentPrincipal,
    services: ServicesDep,
    version: VersionQuery = None,
) -> Response:
    principal.require_workflow(workflow_id)
    return await _answer(await services.workflows.get(principal.user_id, workflow_id, version))


@router.put(
    "/{workflow_id}",
    response_model=WorkflowOut,
    summary="Store a new version",
    description=(
        "A whole definition replaces the graph. A body without `nodes` and `connections` "
        "changes only the workflow's own fields (`name`, `description`, `tags`, `config`, "
        "`version`, `is_active`) and keeps the graph."
    ),
    openapi_extra=_schema_of("WorkflowDefinition", "a definition, or some of its own fields"),
)
async def replace_workflow(
    workflow_id: str,
    principal: CurrentPrincipal,
    services: ServicesDep,
    body: Annotated[dict[str, Any], Body()],
    draft: DraftQuery = False,
) -> Response:
    principal.require_user_token()
    store = services.workflows
    if "nodes" not in body and "connections" not in body:
        return await _answer(await store.patch(principal.user_id, workflow_id, body))
    definition: WorkflowDefinition = parse(WorkflowDefinition, body)
    return await _answer(await store.replace(principal.user_id, workflow_id, definition, draft))


@router.get(
    "/{workflow_id}/versions",
    response_model=VersionPage,
    summary="List the kept versions, newest first",
    description=(
        "Only the latest `FLOWSTREAM_WORKFLOW_MAX_VERSIONS` versions are kept: the write that "
        "makes a new version removes the oldest one past that number."
    ),
)
async def list_versions(
    workflow_id: str,
    principal: CurrentPrincipal,
    services: ServicesDep,
    page: PageQuery = 1,
    size: SizeQuery = 20,
) -> VersionPage:
    principal.require_workflow(workflow_id)
    items, total = await services.workflows.versions(principal.user_id, workflow_id, page, size)
    meta = {"total": total, "page": page, "size": size, "pages": math.ceil(total / size)}
    return VersionPage(items=[_version(r) for r in items], **meta)


@router.get(
    "/{workflow_id}/export",
    response_model=WorkflowDefinition,
    summary="Export a definition (the body `POST /api/workflows/import` takes)",
)
async def export_workflow(
    workflow_id: str,
    principal: CurrentPrincipal,
    services: ServicesDep,
    response: Response,
    version: VersionQuery = None,
) -> WorkflowDefinition:
    principal.require_workflow(workflow_id)
    record = await services.workflows.get(principal.user_id, workflow_id, version)
    response.headers["content-disposition"] = (
        f'attachment; filename="workflow-{record.id}-v{record.version}.json"'
    )
    return _shown(record)


@router.post(
    "/{workflow_id}/nodes",
    status_code=201,
    response_model=NodeChange,
    summary="Add a node (a new version, a draft while the graph is incomplete)",
    description="Without an `id`, the node gets one made from its name: see `node.id`.",
)
async def add_node(
    workflow_id: str, node: NodeInput, principal: CurrentPrincipal, services: ServicesDep
) -> NodeChange:
    principal.require_user_token()
    record = await services.workflows.add_node(principal.user_id, workflow_id, node)
    return _node_out(record, record.definition.nodes[-1].id)


@router.put(
    "/{workflow_id}/nodes/{node_id}",
    response_model=NodeChange,
    summary="Change a node's fields (a new version); its id stays",
    openapi_extra=_schema_of("NodeInput", "the fields to change, in any accepted spelling"),
)
async def update_node(
    workflow_id: str,
    node_id: str,
    principal: CurrentPrincipal,
    services: ServicesDep,
    body: Annotated[dict[str, Any], Body()],
) -> NodeChange:
    principal.require_user_token()
    record = await services.workflows.update_node(principal.user_id, workflow_id, node_id, body)
    return _node_out(record, node_id)


@router.delete(
    "/{workflow_id}/nodes/{node_id}",
    response_model=WorkflowOut,
    summary="Remove a node and its connections (a new version)",
)
async def delete_node(
    workflow_id: str, node_id: str, principal: CurrentPrincipal, services: ServicesDep
) -> Response:
    principal.require_user_token()
    return await _answer(
        await services.workflows.delete_node(principal.user_id, workflow_id, node_id)
    )


@router.post(
    "/{workflow_id}/connections",
    status_code=201,
    response_model=ConnectionChange,
    summary="Add a connection (a new version, a draft while the graph is incomplete)",
    description="`connection.id` addresses it: its own `id`, else `<from>-<to>`.",
)
async def add_connection(
    workflow_id: str,
    connection: ConnectionInput,
    principal: CurrentPrincipal,
    services: ServicesDep,
) -> ConnectionChange:
    principal.require_user_token()
    record = await services.workflows.add_connection(principal.user_id, workflow_id, connection)
    added = next(
        c
        for c in reversed(record.definition.connections)
        if (c.source, c.target) == (connection.source, connection.target)
    )
    return _connection_out(record, added)


@router.put(
    "/{workflow_id}/connections/{connection_id}",
    response_model=ConnectionChange,
    summary="Change a connection's fields (a new version)",
    openapi_extra=_schema_of("ConnectionInput", "the fields to change, in any accepted spelling"),
)
async def update_connection(
    workflow_id: str,
    connection_id: str,
    principal: CurrentPrincipal,
    services: ServicesDep,
    body: Annotated[dict[str, Any], Body()],
) -> ConnectionChange:
    principal.require_user_token()
    record, connection = await services.workflows.update_connection(
        principal.user_id, workflow_id, connection_id, body
    )
    return _connection_out(record, connection)


@router.delete(
    "/{workflow_id}/connections/{connection_id}",
    response_model=WorkflowOut,
    summary="Remove a connection (a new version)",
)
async def delete_connection(
    workflow_id: str, connection_id: str, principal: CurrentPrincipal, services: ServicesDep
) -> Response:
    principal.require_user_token()
    return await _answer(
        await services.workflows.delete_connection(principal.user_id, workflow_id, connection_id)
    )


@router.delete("/{workflow_id}", status_code=204, summary="Delete a workflow and its versions")
async def delete_workflow(
    workflow_id: str, principal: CurrentPrincipal, services: ServicesDep
) -> Response:
    principal.require_user_token()
    await services.workflows.delete(principal.user_id, workflow_id)
    return Response(status_code=204)
