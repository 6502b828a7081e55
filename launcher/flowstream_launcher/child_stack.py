"""The whole stack started as `make run` starts it, as a child process: for tests and benchmarks.

It takes free ports and its own data directory, so it never meets a developer's running stack, and
waits for the launcher's banner (an event on its output, not a poll) before handing it over.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from flowstream_shared.credentials import generate_private_key, public_key_of
from flowstream_shared.nats_access import Identity

from flowstream_launcher.banner import READY_MARKER
from flowstream_launcher.nats_auth import NatsAuth
from flowstream_launcher.nats_server import free_port

BANNER_LAST_LINE = "  Try:"
NATS_IDENTITIES_FILE = "nats-identities.json"


class ExternalNats(Protocol):
    """A NATS the stack runs on instead of its embedded server (e.g. a `NatsCluster`), whose
    identities are known: its services connect as themselves, as on the embedded server."""

    @property
    def address(self) -> str: ...

    @property
    def auth(self) -> NatsAuth: ...


@dataclass
class ChildStack:
    base_url: str
    nats_address: str  # where NATS listens; every connection authenticates
    secret: str
    ports: dict[str, int]
    # What another gateway (public) or engine (private) process joining the stack needs.
    credentials_public_key: str
    credentials_private_key: str = field(default="", repr=False)
    banner: list[str] = field(default_factory=list)
    output: list[str] = field(default_factory=list)
    nats_auth: NatsAuth | None = field(default=None, repr=False)

    @property
    def nats_url(self) -> str:
        """NATS as the admin identity: for tests and tools."""
        assert self.nats_auth is not None, "the stack is not ready yet"
        return self.nats_auth.url_for(Identity.ADMIN, self.nats_address)

    def service_env(self, identity: Identity) -> dict[str, str]:
        """The NATS settings of one more service process joining this stack."""
        assert self.nats_auth is not None, "the stack is not ready yet"
        return {"FLOWSTREAM_NATS_URL": self.nats_address, **self.nats_auth.env_for(identity)}


# The ports are free when picked, but another process may take one before the launcher binds it;
# the launcher then refuses to start, naming the port, and a new set is picked.
PORT_ATTEMPTS = 3


class _PortTaken(RuntimeError):
    pass


@asynccontextmanager
async def child_stack(
    data_dir: Path,
    cwd: Path,
    extra_env: Mapping[str, str] | None = None,
    echo: bool = False,
    ready_timeout: float = 90.0,
    nats: ExternalNats | None = None,
) -> AsyncIterator[ChildStack]:
    """`nats`: run on that NATS (e.g. a cluster) instead of starting an embedded server."""
    for attempt in range(PORT_ATTEMPTS):
        try:
            async with _child_stack(data_dir, cwd, extra_env, echo, ready_timeout, nats) as stack:
                yield stack
            return
        except _PortTaken:
            if attempt == PORT_ATTEMPTS - 1:
                raise


@asynccontextmanager
async def _child_stack(
    data_dir: Path,
    cwd: Path,
    extra_env: Mapping[str, str] | None,
    echo: bool,
    ready_timeout: float,
    nats: ExternalNats | None,
) -> AsyncIterator[ChildStack]:
    ports = {name: free_port() for name in ("nats", "gateway", "engine", "history")}
    secret = secrets.token_urlsafe(48)
    credentials_key = generate_private_key()
    env = {
        **os.environ,
        "FLOWSTREAM_DATA_DIR": str(data_dir),
        "FLOWSTREAM_NATS_PORT": str(ports["nats"]),
        "FLOWSTREAM_GATEWAY_PORT": str(ports["gateway"]),
        "FLOWSTREAM_ENGINE_PORT": str(ports["engine"]),
        "FLOWSTREAM_HISTORY_PORT": str(ports["history"]),
        "FLOWSTREAM_JWT_SECRET": secret,
        "FLOWSTREAM_CREDENTIALS_PRIVATE_KEY": credentials_key,
        "FLOWSTREAM_EXAMPLES_DIR": str(cwd / "examples"),
        **(extra_env or {}),
    }
    env.pop("FLOWSTREAM_NATS_URL", None)
    env.pop("FLOWSTREAM_NATS_IDENTITIES_FILE", None)
    nats_address = f"nats://127.0.0.1:{ports['nats']}"
    if nats is not None:
        nats_address = nats.address
        identities = data_dir / NATS_IDENTITIES_FILE
        await asyncio.to_thread(nats.auth.save, identities)
        env |= {
            "FLOWSTREAM_NATS_URL": nats.address,
            "FLOWSTREAM_NATS_IDENTITIES_FILE": str(identities),
        }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flowstream_launcher", "run",
        cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    stack = ChildStack(
        base_url=f"http://127.0.0.1:{ports['gateway']}",
        nats_address=nats_address,
        secret=secret,
        ports=ports,
        credentials_public_key=public_key_of(credentials_key),
        credentials_private_key=credentials_key,
    )
    banner_seen: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def relay() -> None:
        assert process.stdout is not None
        in_banner = False
        async for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            stack.output.append(line)
            if echo:
                print(line, flush=True)
            in_banner = in_banner or line.startswith(READY_MARKER)
            if in_banner and not banner_seen.done():
                stack.banner.append(line)
                if line.startswith(BANNER_LAST_LINE):
                    banner_seen.set_result(None)
        if not banner_seen.done():
            tail = "\n".join(stack.output[-40:])
            taken = any("is in use" in line for line in stack.output)
            error = _PortTaken if taken else RuntimeError
            banner_seen.set_exception(error(f"the launcher exited:\n{tail}"))

    relay_task = asyncio.create_task(relay())
    try:
        await asyncio.wait_for(banner_seen, timeout=ready_timeout)
        stack.nats_auth = (
            nats.auth if nats is not None else NatsAuth.load_or_create(data_dir / "nats-auth.json")
        )
        yield stack
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(process.wait(), timeout=30)
            except TimeoutError:
                process.kill()
                await process.wait()
        relay_task.cancel()
