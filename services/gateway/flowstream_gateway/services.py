"""What the routes use, built once in the lifespan (the composition root)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request

from flowstream_gateway.api_keys import ApiKeyStore
from flowstream_gateway.apis import ApiStore
from flowstream_gateway.auth import VerifiedTokens
from flowstream_gateway.credentials import CredentialStore
from flowstream_gateway.history_client import HistoryClient
from flowstream_gateway.hub import EventHub
from flowstream_gateway.metrics import GatewayMetrics
from flowstream_gateway.runs import RunService
from flowstream_gateway.settings import GatewaySettings
from flowstream_gateway.workflows import WorkflowStore


@dataclass
class Services:
    settings: GatewaySettings
    nc: Any
    js: Any
    hub: EventHub
    runs: RunService
    workflows: WorkflowStore
    api_keys: ApiKeyStore
    metrics: GatewayMetrics
    history: HistoryClient
    apis: ApiStore
    credentials: CredentialStore
    verified_tokens: VerifiedTokens = field(default_factory=VerifiedTokens)


async def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(_services)]
