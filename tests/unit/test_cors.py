"""CORS for the whole API: off by default, Dify's preflight answers for configured origins."""

from __future__ import annotations

import secrets

import httpx
import pytest
from flowstream_gateway.app import create_app
from flowstream_gateway.settings import GatewaySettings
from flowstream_shared.credentials import generate_private_key, public_key_of

PUBLIC_KEY = public_key_of(generate_private_key())

PREFLIGHT = {
    "Origin": "http://a.test",
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "Authorization, Content-Type, X-App-Code",
}


def settings(**extra: object) -> GatewaySettings:
    return GatewaySettings.model_validate(
        {"jwt_secret": secrets.token_urlsafe(32), "credentials_public_key": PUBLIC_KEY, **extra}
    )


async def preflight(app_settings: GatewaySettings, path: str) -> httpx.Response:
    # No lifespan: a preflight is answered before any route (or NATS) is involved.
    transport = httpx.ASGITransport(app=create_app(app_settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        return await client.options(path, headers=PREFLIGHT)


def test_origins_come_comma_separated_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLOWSTREAM_JWT_SECRET", secrets.token_urlsafe(32))
    monkeypatch.setenv("FLOWSTREAM_CREDENTIALS_PUBLIC_KEY", PUBLIC_KEY)
    monkeypatch.setenv("FLOWSTREAM_CORS_ORIGINS", " http://a.test, https://b.test ,")
    assert GatewaySettings().cors_origins == ["http://a.test", "https://b.test"]
    monkeypatch.delenv("FLOWSTREAM_CORS_ORIGINS")
    assert GatewaySettings().cors_origins == []


async def test_without_origins_there_is_no_cross_origin_access() -> None:
    response = await preflight(settings(), "/v1/workflows/run")
    assert response.status_code == 405
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize("path", ["/v1/workflows/run", "/api/workflows", "/api/executions/x"])
async def test_a_configured_origin_gets_difys_preflight_answer(path: str) -> None:
    response = await preflight(settings(cors_origins=["http://a.test"]), path)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "http://a.test"
    methods = response.headers["access-control-allow-methods"].split(", ")
    assert methods == ["GET", "PUT", "POST", "DELETE", "OPTIONS", "PATCH"]
    allowed = {h.lower() for h in response.headers["access-control-allow-headers"].split(", ")}
    assert {"authorization", "content-type", "x-app-code"} <= allowed
    assert "access-control-allow-credentials" not in response.headers


async def test_any_origin_with_a_star() -> None:
    response = await preflight(settings(cors_origins=["*"]), "/v1/info")
    assert response.status_code == 200 and response.headers["access-control-allow-origin"] == "*"
