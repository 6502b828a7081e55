"""What the routes use, built once in the lifespan (the composition root)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request

from flowstream_gateway.admission import Admission, Caller, StreamTicket
from flowstream_gateway.api_keys import ApiKeyStore
from flowstream_gateway.apis import ApiStore
from flowstream_gateway.auth import VerifiedTokens
from flowstream_gateway.consistent_reads import ConsistentReads
from flowstream_gateway.credentials import CredentialStore
from flowstream_gateway.history_client import HistoryClient
from flowstream_gateway.hub import EventHub
from flowstream_gateway.metrics import GatewayMetrics
from flowstream_gateway.queue import QueueView
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
    # History reads that reflect what a client may have seen (ADR 0016).
    reads: ConsistentReads
    apis: ApiStore
    credentials: CredentialStore
    admission: Admission
    queue: QueueView
    verified_tokens: VerifiedTokens = field(default_factory=VerifiedTokens)

    def open_stream(self, user_id: str, key_id: str | None) -> StreamTicket:
        """A place in the caller's open-stream quota (429 when it is full)."""
        return self.admission.streams.open(Caller(user_id, key_id))


async def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(_services)]
