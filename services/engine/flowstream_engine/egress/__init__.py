"""Where API_CALL and LLM nodes may connect (DESIGN §8): the policy and the transport that
enforces it on every connection."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from flowstream_engine.egress.policy import EgressDenied, EgressPolicy, EgressRule
from flowstream_engine.egress.transport import (
    EgressBackend,
    EgressRefused,
    EgressTransport,
    egress_denial,
)

if TYPE_CHECKING:
    from flowstream_engine.settings import EngineSettings

__all__ = [
    "EgressBackend",
    "EgressDenied",
    "EgressPolicy",
    "EgressRefused",
    "EgressRule",
    "EgressTransport",
    "egress_denial",
    "policy_for",
]

NATS_DEFAULT_PORT = 4222


def own_endpoints(settings: EngineSettings) -> list[str]:
    """What the engine itself knows to be flowstream's: its NATS servers and its own port."""
    endpoints = [f"{_bracketed(settings.engine_host)}:{settings.engine_port}"]
    for server in settings.servers:
        parts = urlsplit(server.strip() if "://" in server else f"nats://{server.strip()}")
        if parts.hostname:
            endpoints.append(f"{_bracketed(parts.hostname)}:{parts.port or NATS_DEFAULT_PORT}")
    return endpoints


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def policy_for(settings: EngineSettings) -> EgressPolicy:
    return EgressPolicy.build(
        allow=settings.egress_allow,
        deny=settings.egress_deny,
        protected=[*settings.egress_protected, *own_endpoints(settings)],
        default=settings.egress_default,
    )
