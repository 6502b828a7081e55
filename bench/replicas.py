"""More engine or gateway processes joining a running stack, as a deployment would add replicas.

Each gets what the launcher gives its own copy of the service (the NATS address and the service's
NATS identity, the JWT secret or the credential key it needs) and a free port, and is ready when
its `/readyz` answers.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from flowstream_launcher.child_stack import ChildStack
from flowstream_launcher.nats_server import free_port
from flowstream_shared.nats_access import Identity

from bench.procs import Helper, helper_process, python_module, wait_http_ok


@dataclass(frozen=True)
class Replica:
    name: str
    port: int
    helper: Helper

    @property
    def pid(self) -> int:
        return self.helper.process.pid

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _env(stack: ChildStack, identity: Identity, extra: dict[str, str]) -> dict[str, str]:
    """The caller's environment, this service's NATS address and identity, and `extra`."""
    return {
        **os.environ,
        **stack.service_env(identity),
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


@asynccontextmanager
async def _replica(
    name: str, module: str, env: dict[str, str], port: int
) -> AsyncIterator[Replica]:
    async with helper_process(name, python_module(module), env=env) as helper:
        await wait_http_ok(f"http://127.0.0.1:{port}/readyz", helper)
        yield Replica(name, port, helper)


@asynccontextmanager
async def engine(stack: ChildStack, name: str = "engine-2") -> AsyncIterator[Replica]:
    port = free_port()
    env = _env(
        stack,
        Identity.ENGINE,
        {
            "FLOWSTREAM_ENGINE_PORT": str(port),
            "FLOWSTREAM_CREDENTIALS_PRIVATE_KEY": stack.credentials_private_key,
        },
    )
    async with _replica(name, "flowstream_engine", env, port) as replica:
        yield replica


@asynccontextmanager
async def gateway(stack: ChildStack, name: str) -> AsyncIterator[Replica]:
    port = free_port()
    env = _env(
        stack,
        Identity.GATEWAY,
        {
            "FLOWSTREAM_GATEWAY_PORT": str(port),
            "FLOWSTREAM_JWT_SECRET": stack.secret,
            "FLOWSTREAM_CREDENTIALS_PUBLIC_KEY": stack.credentials_public_key,
        },
    )
    async with _replica(name, "flowstream_gateway", env, port) as replica:
        yield replica


async def metric_total(base_url: str, name: str) -> float:
    """The sum of a Prometheus metric over its labels, from a service's `/metrics`."""
    async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
        text = (await client.get(f"{base_url}/metrics")).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith((f"{name} ", f"{name}{{")):
            total += float(line.rsplit(" ", 1)[1])
    return total
