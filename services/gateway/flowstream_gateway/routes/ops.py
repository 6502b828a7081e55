"""Liveness, readiness and metrics: unauthenticated, for orchestrators and scrapers."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from flowstream_shared import subjects
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from flowstream_gateway.services import ServicesDep

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="NATS is reachable and the engine and history consumers exist")
async def readyz(services: ServicesDep) -> JSONResponse:
    checks: dict[str, str] = {"nats": "ok" if services.nc.is_connected else "disconnected"}
    for stream, consumer in (
        (subjects.RUNS_STREAM, subjects.ENGINE_CONSUMER),
        (subjects.EVENTS_STREAM, subjects.HISTORY_CONSUMER),
    ):
        try:
            await services.js.consumer_info(stream, consumer, timeout=2)
            checks[consumer] = "ok"
        except Exception:
            checks[consumer] = "missing"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status_code=200 if ready else 503,
    )


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(services: ServicesDep) -> Response:
    services.metrics.open_streams.set(services.hub.watched_runs)
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
