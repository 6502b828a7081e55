"""The API registry: named HTTP APIs that API_CALL nodes call by `api_id`."""

from __future__ import annotations

from fastapi import APIRouter, Response
from flowstream_shared.apis import ApiDefinition
from pydantic import BaseModel

from flowstream_gateway.apis import ApiRecord
from flowstream_gateway.auth import CurrentPrincipal
from flowstream_gateway.services import ServicesDep

router = APIRouter(prefix="/api/apis", tags=["apis"])


class ApiOut(ApiDefinition):
    id: str
    # The placeholders of `path`: the `parameters` an API_CALL must give.
    required_parameters: list[str]
    created_at: int
    updated_at: int


class ApiList(BaseModel):
    items: list[ApiOut]
    total: int


def _out(record: ApiRecord) -> ApiOut:
    return ApiOut(
        **record.model_dump(exclude={"user_id"}), required_parameters=record.path_parameters
    )


@router.post("", status_code=201, response_model=ApiOut, summary="Register an API")
async def create_api(
    body: ApiDefinition, principal: CurrentPrincipal, services: ServicesDep
) -> ApiOut:
    principal.require_user_token()
    return _out(await services.apis.create(principal.user_id, body))


@router.get("", response_model=ApiList, summary="List the caller's APIs, newest first")
async def list_apis(principal: CurrentPrincipal, services: ServicesDep) -> ApiList:
    principal.require_user_token()
    items = [_out(r) for r in services.apis.list(principal.user_id)]
    return ApiList(items=items, total=len(items))


@router.get("/{api_id}", response_model=ApiOut, summary="Get an API")
async def get_api(api_id: str, principal: CurrentPrincipal, services: ServicesDep) -> ApiOut:
    principal.require_user_token()
    return _out(await services.apis.get(principal.user_id, api_id))


@router.put(
    "/{api_id}",
    response_model=ApiOut,
    summary="Replace an API's settings (runs already submitted keep theirs)",
)
async def replace_api(
    api_id: str, body: ApiDefinition, principal: CurrentPrincipal, services: ServicesDep
) -> ApiOut:
    principal.require_user_token()
    return _out(await services.apis.replace(principal.user_id, api_id, body))


@router.delete("/{api_id}", status_code=204, summary="Delete an API")
async def delete_api(api_id: str, principal: CurrentPrincipal, services: ServicesDep) -> Response:
    principal.require_user_token()
    await services.apis.delete(principal.user_id, api_id)
    return Response(status_code=204)
