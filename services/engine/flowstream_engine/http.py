"""The engine's HTTP client: one per process, so API_CALL and LLM nodes share a connection pool.

The engine's composition root closes it at shutdown. Tests pass their own client to the
executor instead (`RunExecutor(..., http=client)`).
"""

from __future__ import annotations

import httpx

USER_AGENT = "flowstream-engine/0.1"

_client: httpx.AsyncClient | None = None


def shared_client() -> httpx.AsyncClient:
    """The process's client, created on first use (and again after :func:`close_shared_client`)."""
    global _client
    if _client is None or _client.is_closed:
        _client = httpx.AsyncClient(
            headers={"User-Agent": USER_AGENT},
            limits=httpx.Limits(max_connections=512, max_keepalive_connections=64),
            timeout=httpx.Timeout(30.0),
        )
    return _client


async def close_shared_client() -> None:
    global _client
    client, _client = _client, None
    if client is not None:
        await client.aclose()
