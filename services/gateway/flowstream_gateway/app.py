"""The gateway's composition root: NATS connection, stores and routers, built in the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from flowstream_shared import nats_connection, subjects
from flowstream_shared.credentials import CredentialRecord, Sealer
from flowstream_shared.telemetry.tracing import tracing_enabled
from flowstream_shared.topology import ensure_topology

from flowstream_gateway.admission import Admission
from flowstream_gateway.api_keys import ApiKeyRecord, ApiKeyStore
from flowstream_gateway.apis import ApiRecord, ApiStore
from flowstream_gateway.auth import principal_for
from flowstream_gateway.consistent_reads import ConsistentReads
from flowstream_gateway.cors import add_cors
from flowstream_gateway.credentials import CredentialStore
from flowstream_gateway.errors import install_error_handlers
from flowstream_gateway.history_client import HistoryClient
from flowstream_gateway.hub import EventHub
from flowstream_gateway.idempotency import IdempotencyKeys
from flowstream_gateway.kv_cache import KvCache
from flowstream_gateway.limits import BodySizeLimit
from flowstream_gateway.metrics import GatewayMetrics, HttpMetrics
from flowstream_gateway.nats_callout import CalloutResponder
from flowstream_gateway.openapi import install_openapi
from flowstream_gateway.queue import QueueView
from flowstream_gateway.routes import (
    apis as apis_routes,
)
from flowstream_gateway.routes import (
    credentials,
    dify,
    execute,
    executions,
    keys,
    me,
    monitor,
    openai_compat,
    ops,
    queue,
    websockets,
    workflows,
)
from flowstream_gateway.routes.console import router as console_router
from flowstream_gateway.runs import RunService
from flowstream_gateway.services import Services
from flowstream_gateway.settings import GatewaySettings
from flowstream_gateway.workflow_checks import workflow_limits
from flowstream_gateway.workflows import WorkflowRecord, WorkflowStore

log = logging.getLogger("flowstream.gateway")

DESCRIPTION = """\
Run workflows and watch every step live. Authenticate with `Authorization: Bearer <token>`: a JWT
(HS256, `sub` = user id) or an app API key from `POST /api/keys`.
Errors are `{"code", "message", "status"}`.
"""


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    metrics = GatewayMetrics()  # the lifespan's services and the HTTP middleware share it

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resolved = settings or GatewaySettings()
        hub: list[EventHub] = []
        caches: list[KvCache[Any]] = []

        async def reconnected() -> None:
            if hub:
                hub[0].on_reconnected()
            for cache in caches:
                try:
                    await cache.rewatch()
                except Exception as exc:  # NATS away again: the next reconnect tries again
                    log.warning("KV copy not watched again: %s", exc)

        nc = await nats_connection.connect(resolved, "gateway", reconnected_cb=reconnected)
        js = nc.jetstream()
        await ensure_topology(js, resolved)
        workflow_cache = KvCache(
            await js.key_value(subjects.WORKFLOWS_BUCKET),
            WorkflowRecord.model_validate_json,
            mirrored="*",  # latest versions only; superseded ones are read from KV on demand
        )
        key_cache = KvCache(
            await js.key_value(subjects.API_KEYS_BUCKET), ApiKeyRecord.model_validate_json
        )
        api_cache = KvCache(await js.key_value(subjects.APIS_BUCKET), ApiRecord.model_validate_json)
        credential_cache = KvCache(
            await js.key_value(subjects.CREDENTIALS_BUCKET), CredentialRecord.model_validate_json
        )
        caches.extend([workflow_cache, key_cache, credential_cache, api_cache])
        for cache in caches:
            await cache.start()
        credential_store = CredentialStore(
            credential_cache, Sealer(resolved.credentials_public_key)
        )
        apis = ApiStore(api_cache, credential_store)
        hub.append(EventHub(nc))
        admission = Admission(await js.key_value(subjects.RATES_BUCKET), resolved)
        runs = RunService(
            nc,
            js,
            hub[0],
            await js.key_value(subjects.RUNS_BUCKET),
            await js.key_value(subjects.CONTROL_BUCKET),
            IdempotencyKeys(await js.key_value(subjects.IDEMPOTENCY_BUCKET)),
            resolved,
            admission,
            await js.key_value(subjects.RESULTS_BUCKET),
        )
        history = HistoryClient(nc)
        app.state.services = Services(
            settings=resolved,
            nc=nc,
            js=js,
            hub=hub[0],
            runs=runs,
            workflows=WorkflowStore(
                workflow_cache, credential_store, apis, workflow_limits(resolved)
            ),
            api_keys=ApiKeyStore(key_cache),
            metrics=metrics,
            history=history,
            reads=ConsistentReads(history, nc, js, runs),
            credentials=credential_store,
            apis=apis,
            admission=admission,
            queue=QueueView(nc, js, await js.key_value(subjects.SLOTS_BUCKET), resolved),
        )
        callout: CalloutResponder | None = None
        if resolved.nats_callout_issuer_seed is not None:
            services = app.state.services
            callout = CalloutResponder(resolved, lambda token: principal_for(token, services))
            await callout.start()
        log.info("gateway ready on port %d", resolved.gateway_port)
        try:
            yield
        finally:
            if callout is not None:
                await callout.stop()
            await hub[0].stop()
            await workflow_cache.stop()
            await key_cache.stop()
            await credential_cache.stop()
            await api_cache.stop()
            await nc.drain()

    app = FastAPI(
        title="flowstream",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    install_openapi(app)
    routers = (
        ops.router,
        workflows.router,
        execute.router,
        executions.router,
        executions.stats_router,
        websockets.router,
        dify.router,
        keys.router,
        me.router,
        openai_compat.router,
        credentials.router,
        queue.router,
        console_router,
        apis_routes.router,
        monitor.router,
        monitor.metrics_router,
    )
    for router in routers:
        app.include_router(router)
    max_body = (
        settings.max_body_bytes
        if settings
        else GatewaySettings.model_fields["max_body_bytes"].default
    )
    app.add_middleware(BodySizeLimit, max_bytes=max_body)
    add_cors(app, settings.cors_origins if settings else [])
    app.add_middleware(HttpMetrics, metrics=metrics)  # added last: outermost
    if tracing_enabled():
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(app, excluded_urls="/healthz,/readyz,/metrics")
    return app
