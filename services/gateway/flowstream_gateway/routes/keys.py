"""App API keys (Dify style): each key runs exactly one workflow."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from flowstream_gateway.auth import CurrentPrincipal
from flowstream_gateway.services import ServicesDep

router = APIRouter(prefix="/api/keys", tags=["api keys"])


class KeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workflow_id: str
    name: str = Field(default="", max_length=200)


class KeyOut(BaseModel):
    id: str
    workflow_id: str
    name: str
    created_at: int


class IssuedKey(KeyOut):
    key: str = Field(description="Shown once; only its hash is stored")


@router.post("", status_code=201, response_model=IssuedKey, summary="Issue an API key")
async def issue_key(
    body: KeyRequest, principal: CurrentPrincipal, services: ServicesDep
) -> IssuedKey:
    principal.require_user_token()
    await services.workflows.get(principal.user_id, body.workflow_id)
    record, key = await services.api_keys.issue(principal.user_id, body.workflow_id, body.name)
    return IssuedKey(**record.model_dump(exclude={"user_id"}), key=key)


@router.get("", response_model=list[KeyOut], summary="List the caller's API keys")
async def list_keys(principal: CurrentPrincipal, services: ServicesDep) -> list[KeyOut]:
    principal.require_user_token()
    return [
        KeyOut(**r.model_dump(exclude={"user_id"}))
        for r in services.api_keys.list(principal.user_id)
    ]


@router.delete("/{key_id}", status_code=204, summary="Revoke an API key")
async def revoke_key(key_id: str, principal: CurrentPrincipal, services: ServicesDep) -> Response:
    principal.require_user_token()
    await services.api_keys.revoke(principal.user_id, key_id)
    return Response(status_code=204)
