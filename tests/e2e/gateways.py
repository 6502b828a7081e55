"""One more gateway process joining the test stack: a replica to fail over to, or to stop."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from flowstream_launcher.nats_server import free_port
from flowstream_shared.nats_access import Identity

from tests.e2e.conftest import Stack

READY_LINE = b"gateway ready on port"


@dataclass
class Gateway:
    base_url: str
    process: asyncio.subprocess.Process


@asynccontextmanager
async def gateway_process(stack: Stack) -> AsyncIterator[Gateway]:
    port = free_port()
    env = {
        **os.environ,
        **stack.process.service_env(Identity.GATEWAY),
        "FLOWSTREAM_JWT_SECRET": stack.secret,
        "FLOWSTREAM_CREDENTIALS_PUBLIC_KEY": stack.process.credentials_public_key,
        "FLOWSTREAM_GATEWAY_PORT": str(port),
        "FLOWSTREAM_SSE_KEEPALIVE_S": "1",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flowstream_gateway", env=env, stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    stderr = process.stderr

    async def ready() -> None:
        # The lifespan logs this line once NATS, the stores and the event hub are up.
        async for line in stderr:
            if READY_LINE in line:
                return
        raise RuntimeError("the gateway exited before it was ready")

    async def drain() -> None:  # a full pipe would block the gateway
        async for _ in stderr:
            pass

    draining: asyncio.Task[None] | None = None
    try:
        await asyncio.wait_for(ready(), timeout=30)
        draining = asyncio.create_task(drain())
        base = f"http://127.0.0.1:{port}"
        # uvicorn binds right after the lifespan: the first request may need a retry.
        async with httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(retries=5)) as client:
            assert (await client.get(f"{base}/healthz")).status_code == 200
        yield Gateway(base, process)
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()
        if draining is not None:
            draining.cancel()
