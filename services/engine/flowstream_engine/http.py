"""The engine's HTTP client: one per process, so API_CALL and LLM nodes share a connection pool,
and every connection it opens passes the egress policy (`flowstream_engine.egress`).

The composition root configures the policy at start-up and closes the client at shutdown. Until
configured, the policy is the strict default (public addresses only, no exceptions). Tests pass
their own client to the executor instead (`RunExecutor(..., http=client)`), or build one over a
policy of their own with :func:`egress_client`.
"""

from __future__ import annotations

import logging

import httpx
from flowstream_shared.telemetry.tracing import tracing_enabled

from flowstream_engine.egress import EgressBackend, EgressPolicy, EgressTransport

USER_AGENT = "flowstream-engine/0.1"
LIMITS = httpx.Limits(max_connections=512, max_keepalive_connections=64)

_client: httpx.AsyncClient | None = None
_policy = EgressPolicy()


def egress_client(policy: EgressPolicy, backend: EgressBackend | None = None) -> httpx.AsyncClient:
    """A client whose every connection, redirect hops included, is checked by `policy`."""
    transport = EgressTransport(backend or EgressBackend(policy), LIMITS)
    client = httpx.AsyncClient(
        headers={"User-Agent": USER_AGENT},
        transport=transport,
        timeout=httpx.Timeout(30.0),
        trust_env=False,
    )
    if tracing_enabled():  # each request a child span of its node's, carrying `traceparent`
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

        HTTPXClientInstrumentor.instrument_client(client)
    return client


async def configure_egress(policy: EgressPolicy) -> None:
    """Use `policy` for the process's client from now on: a client made under another policy
    (an engine started earlier in the same process) is closed, never reused."""
    global _policy
    _policy = policy
    await close_shared_client()


def shared_client() -> httpx.AsyncClient:
    """The process's client, created on first use (and again after :func:`close_shared_client`)."""
    global _client
    if _client is None or _client.is_closed:
        _client = egress_client(_policy)
    return _client


async def close_shared_client() -> None:
    global _client
    client, _client = _client, None
    if client is not None:
        await client.aclose()


def quiet_http_logs() -> None:
    """httpx logs every request's full URL at INFO, query string (and any key in it) included."""
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
