"""The HTTP client the benchmark sets a stack up with (workflows, one recorded run): not a load
generator, which is wrk (`bench.wrk`)."""

from __future__ import annotations

import httpx


def client(base_url: str, token: str | None = None) -> httpx.AsyncClient:
    """trust_env=False keeps any proxy out of loopback."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60, trust_env=False)
