"""Who the caller is, and where to subscribe to its runs' events directly on NATS."""

from __future__ import annotations

from fastapi import APIRouter
from flowstream_shared import subjects
from pydantic import BaseModel, Field

from flowstream_gateway.auth import CurrentPrincipal
from flowstream_gateway.services import ServicesDep

router = APIRouter(prefix="/api", tags=["identity"])


class NatsAccess(BaseModel):
    url: str = Field(description="Connect here with your bearer token as the connection token")
    subject_prefix: str = Field(
        description="Your events are `<subject_prefix>.<...>.<event>`: subscribe to "
        "`<subject_prefix>.>`; nothing else is readable, nothing is publishable"
    )


class Me(BaseModel):
    id: str = Field(description="The user id (an app key acts for its owner)")
    kind: str = Field(description="`user` (a JWT) or `app` (an API key bound to one workflow)")
    workflow_id: str | None = None
    owner: str = Field(description="The NATS subject token of the user's events")
    nats: NatsAccess


@router.get("/me", summary="Who you are, and where to subscribe to your events on NATS")
async def me(principal: CurrentPrincipal, services: ServicesDep) -> Me:
    owner = subjects.owner_token(principal.user_id)
    prefix = f"{subjects.EVENTS_PREFIX}.{owner}"
    if principal.workflow_id is not None:
        prefix = f"{prefix}.{principal.workflow_id}"
    settings = services.settings
    return Me(
        id=principal.user_id,
        kind="app" if principal.workflow_id else "user",
        workflow_id=principal.workflow_id,
        owner=owner,
        nats=NatsAccess(url=settings.nats_public_url or settings.url, subject_prefix=prefix),
    )
