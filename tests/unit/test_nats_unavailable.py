"""A request that meets NATS away (restarting, electing, reconnecting) is told to retry: 503 with
Retry-After and the usual error body, never a 500."""

from __future__ import annotations

import nats.errors
import nats.js.errors
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from flowstream_gateway.errors import install_error_handlers


def app_raising(error: Exception) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/api/executions/{run_id}")
    async def read(run_id: str) -> dict[str, str]:
        raise error

    return app


@pytest.mark.parametrize(
    "error",
    [
        nats.errors.TimeoutError(),
        nats.errors.ConnectionClosedError(),
        nats.errors.NoRespondersError(),
        nats.js.errors.ServiceUnavailableError(code=503, description="JetStream not ready"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_nats_away_is_a_503_to_retry(error: Exception) -> None:
    with TestClient(app_raising(error), raise_server_exceptions=False) as client:
        response = client.get("/api/executions/r-1")

    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert response.json() == {
        "code": "service_unavailable",
        "message": "the event log (NATS) is not answering; retry shortly",
        "status": 503,
    }


def test_other_failures_stay_500() -> None:
    with TestClient(app_raising(RuntimeError("bug")), raise_server_exceptions=False) as client:
        response = client.get("/api/executions/r-1")

    assert response.status_code == 500
    assert response.json()["code"] == "internal_server_error"
