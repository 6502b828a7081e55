"""Credentials: store a secret once, reference it by name from API_CALL and LLM nodes.

Only a user token manages credentials: an app key runs its workflow, nothing more.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response
from flowstream_shared.credentials import CREDENTIAL_NAME_PATTERN

from flowstream_gateway.auth import CurrentPrincipal
from flowstream_gateway.credentials import CredentialCreate, CredentialOut, CredentialSpec
from flowstream_gateway.services import ServicesDep

router = APIRouter(prefix="/api/credentials", tags=["credentials"])


@router.post(
    "",
    status_code=201,
    response_model=CredentialOut,
    summary="Store a credential (its value is never shown again)",
    responses={409: {"description": "A credential of that name exists"}},
)
async def create_credential(
    body: CredentialCreate, principal: CurrentPrincipal, services: ServicesDep
) -> CredentialOut:
    principal.require_user_token()
    return await services.credentials.create(principal.user_id, body)


@router.get("", response_model=list[CredentialOut], summary="List credentials (no values)")
async def list_credentials(
    principal: CurrentPrincipal, services: ServicesDep
) -> list[CredentialOut]:
    principal.require_user_token()
    return services.credentials.list(principal.user_id)


@router.get("/{name}", response_model=CredentialOut, summary="One credential (no value)")
async def get_credential(
    name: str, principal: CurrentPrincipal, services: ServicesDep
) -> CredentialOut:
    principal.require_user_token()
    return await services.credentials.get(principal.user_id, name)


@router.put("/{name}", response_model=CredentialOut, summary="Replace (or create) a credential")
async def replace_credential(
    name: Annotated[str, Path(pattern=CREDENTIAL_NAME_PATTERN)],
    body: CredentialSpec,
    principal: CurrentPrincipal,
    services: ServicesDep,
) -> CredentialOut:
    principal.require_user_token()
    return await services.credentials.replace(principal.user_id, name, body)


@router.delete("/{name}", status_code=204, summary="Delete a credential")
async def delete_credential(
    name: str, principal: CurrentPrincipal, services: ServicesDep
) -> Response:
    principal.require_user_token()
    await services.credentials.delete(principal.user_id, name)
    return Response(status_code=204)
