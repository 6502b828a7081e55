"""The console's route on the real gateway app: served without a token, shadowing nothing."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from flowstream_gateway.app import create_app
from flowstream_launcher.banner import render_banner


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # No lifespan: the routes below need no NATS, which is the point for the console's files.
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client


def _script_path(page: str) -> str:
    match = re.search(r'src="(/console/assets/[^"]+\.js)"', page)
    assert match, page
    return match.group(1)


async def test_the_page_is_served_at_the_root_without_a_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-cache"
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert '<div id="root">' in response.text


async def test_assets_are_served_compressed_and_cached_for_good(client: httpx.AsyncClient) -> None:
    script = _script_path((await client.get("/")).text)
    plain = await client.get(script, headers={"accept-encoding": "identity"})
    packed = await client.get(script, headers={"accept-encoding": "gzip"})
    assert plain.status_code == 200
    assert plain.headers["content-type"].startswith("text/javascript")
    assert "immutable" in plain.headers["cache-control"]
    assert "content-encoding" not in plain.headers
    assert packed.headers["content-encoding"] == "gzip"
    # The test client decodes gzip itself: the same bytes either way.
    assert packed.content == plain.content


@pytest.mark.parametrize(
    "path",
    [
        "/console/../pyproject.toml",
        "/console/%2e%2e/app.py",
        "/console/index.html",
        "/console/SOURCES.sha256.gz",
        "/console/assets/nothing.js",
        "/console/",
    ],
)
async def test_only_built_files_are_served(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize(
    ("path", "status"),
    [("/api/workflows", 401), ("/api/executions", 401), ("/v1/info", 401)],
)
async def test_the_api_still_needs_a_token(
    client: httpx.AsyncClient, path: str, status: int
) -> None:
    assert (await client.get(path)).status_code == status


@pytest.mark.parametrize("path", ["/docs", "/openapi.json", "/healthz"])
async def test_unauthenticated_operational_routes_are_untouched(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert '<div id="root">' not in response.text


async def test_the_console_stays_out_of_the_api_document(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/" not in paths
    assert not any(p.startswith("/console") for p in paths)


def test_the_banner_names_the_console() -> None:
    banner = render_banner("http://127.0.0.1:8080", "tok", "greet-id").splitlines()
    assert "  Console: http://127.0.0.1:8080/   (sign in with the token below)" in banner
    assert banner[-1].startswith("  Try:")  # tests wait for this last line
