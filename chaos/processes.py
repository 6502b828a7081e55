"""Every process of a scenario, started as the launcher starts them, each logging to its own
file: NATS nodes, engines, gateways, history, the side-effect peer and FerretDB.

This is the one module that starts processes and hands out NATS access: the services'
environment (`FLOWSTREAM_*`, built by the launcher's own functions), the server config and the
suite's own NATS connection all come from here, so a change in how processes reach NATS (such as
credentials) is a change here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import nats
from flowstream_launcher.dev_auth import issue_token
from flowstream_launcher.nats_auth import NatsAuth
from flowstream_launcher.nats_server import free_port, nats_server_binary
from flowstream_launcher.readiness import wait_all_ready
from flowstream_launcher.security_env import security_env
from flowstream_launcher.service_process import ServiceSpec
from flowstream_launcher.settings import LauncherSettings
from flowstream_launcher.stack import service_env
from flowstream_shared.credentials import generate_private_key
from flowstream_shared.nats_access import Identity
from nats.aio.client import Client
from pydantic import SecretStr

from chaos.cluster import NodeAddress, Topology
from chaos.settings import ROOT
from tests.mongo.server import FerretDB, start_ferretdb

READY_TIMEOUT_S = 60.0
STOP_GRACE_S = 10.0


def log(message: str) -> None:
    print(f"chaos: {message}", file=sys.stderr, flush=True)


class ManagedProcess:
    """A child in its own process group, its output appended to `log_path`; it can be
    signalled, and started again with the same command line and environment."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], log_path: Path):
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    async def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as output:
            output.write(f"--- start {self.starts + 1} at {time.time():.3f}\n".encode())
            output.flush()
            self.process = await asyncio.create_subprocess_exec(
                *self.argv,
                cwd=ROOT,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1

    def signal(self, sig: signal.Signals) -> float:
        """Signal the whole group; returns when it was sent (Unix time)."""
        sent = time.time()
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, sig)
        return sent

    async def wait_exit(self, timeout_s: float) -> bool:
        if self.process is None:
            return True
        try:
            await asyncio.wait_for(self.process.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        if self.running:
            self.signal(signal.SIGTERM)
            if not await self.wait_exit(grace_s):
                log(f"{self.name} did not stop in {grace_s:g} s: killing it")
        self.signal(signal.SIGKILL)  # also whatever it started and left behind
        await self.wait_exit(grace_s)


@dataclass
class Service:
    """A flowstream service process and the URL that says it is ready."""

    spec: ServiceSpec
    process: ManagedProcess

    @property
    def name(self) -> str:
        return self.process.name

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.spec.port}"


@dataclass
class NatsNode:
    address: NodeAddress
    process: ManagedProcess

    @property
    def name(self) -> str:
        return self.address.name

    @property
    def ready_url(self) -> str:
        return f"{self.address.monitor_url}/healthz"


@dataclass
class Stack:
    topology: Topology
    work_dir: Path
    user: str
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    private_key: str = field(default_factory=generate_private_key, repr=False)
    # Every process is its own NATS identity, as under `make run`.
    nats_auth: NatsAuth = field(default_factory=NatsAuth.generate, repr=False)
    nats_nodes: list[NatsNode] = field(default_factory=list)
    engines: list[Service] = field(default_factory=list)
    gateways: list[Service] = field(default_factory=list)
    history: list[Service] = field(default_factory=list)
    peer: Service | None = None
    ferretdb: FerretDB | None = None
    token: str = ""

    def __post_init__(self) -> None:
        self.token = issue_token(self.secret, self.user)

    @property
    def mongodb_uri(self) -> str | None:
        return f"{self.ferretdb.uri}flowstream" if self.ferretdb is not None else None

    @property
    def gateway_urls(self) -> list[str]:
        return [gateway.base_url for gateway in self.gateways]

    @property
    def peer_url(self) -> str:
        assert self.peer is not None
        return self.peer.base_url

    # --- NATS -----------------------------------------------------------------------------

    async def start_nats(self) -> None:
        for address in self.topology.nodes:
            config = self.work_dir / f"{address.name}.conf"
            config.write_text(self.topology.config(address, self.nats_auth))
            argv = [nats_server_binary(), "-c", str(config)]
            process = ManagedProcess(
                f"nats-{address.name}", argv, os.environ, self.work_dir / f"{address.name}.log"
            )
            self.nats_nodes.append(NatsNode(address, process))
            await process.start()
        await self.wait_nats({node.name for node in self.nats_nodes})

    def nats_node(self, name: str) -> NatsNode:
        return next(node for node in self.nats_nodes if node.name == name)

    async def wait_nats(self, names: set[str]) -> None:
        await wait_all_ready(
            {n.name: n.ready_url for n in self.nats_nodes if n.name in names}, READY_TIMEOUT_S
        )

    async def connect(self) -> Client:
        """The suite's own NATS connection (it reads the event log), to every node."""
        return await nats.connect(
            servers=self.topology.urls,
            user=Identity.ADMIN.value,
            password=self.nats_auth.passwords[Identity.ADMIN.value],
            name="chaos",
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            connect_timeout=2,
        )

    # --- the execution store ------------------------------------------------------------------

    async def start_ferretdb(self) -> None:
        """FerretDB (MongoDB wire protocol) for history; started again on the same port."""
        port = self.ferretdb.port if self.ferretdb is not None else 0
        self.ferretdb = await start_ferretdb(port, self.work_dir / "ferretdb")

    async def stop_ferretdb(self) -> float:
        assert self.ferretdb is not None
        stopped = time.time()
        await self.ferretdb.stop()
        return stopped

    # --- services -------------------------------------------------------------------------

    def _env(self, kind: str, **overrides: str) -> dict[str, str]:
        """A service's environment as the launcher builds it: its own NATS identity, only its
        own secrets, every NATS node as a seed."""
        settings = LauncherSettings(
            data_dir=self.work_dir / "data",
            jwt_secret=SecretStr(self.secret),
            credentials_private_key=SecretStr(self.private_key),
        )
        computed = {"FLOWSTREAM_JWT_SECRET": self.secret}
        computed |= security_env(settings, None, self.private_key)
        env = service_env(kind, settings, self.topology.seed_urls, self.nats_auth, computed)
        env["FLOWSTREAM_STREAM_REPLICAS"] = str(self.topology.replicas)
        if self.mongodb_uri is not None and kind == "history":
            env["FLOWSTREAM_MONGODB_URI"] = self.mongodb_uri
        env.update(overrides)
        return env

    def _service(self, kind: str, index: int, port_var: str, **env: str) -> Service:
        port = free_port()
        name = f"{kind}-{index}"
        spec = ServiceSpec(name, f"flowstream_{kind}", port)
        argv = [sys.executable, "-m", spec.module]
        process = ManagedProcess(
            name,
            argv,
            self._env(kind, **{port_var: str(port)}, **env),
            self.work_dir / f"{name}.log",
        )
        return Service(spec, process)

    async def start_services(self, engines: int, gateways: int) -> None:
        self.history.append(self._service("history", 1, "FLOWSTREAM_HISTORY_PORT"))
        for index in range(1, engines + 1):
            self.engines.append(self._service("engine", index, "FLOWSTREAM_ENGINE_PORT"))
        for index in range(1, gateways + 1):
            self.gateways.append(self._service("gateway", index, "FLOWSTREAM_GATEWAY_PORT"))
        peer_port = free_port()
        self.peer = Service(
            ServiceSpec("peer", "chaos.peer", peer_port),
            ManagedProcess(
                "peer",
                [sys.executable, "-m", "chaos.peer", str(peer_port)],
                os.environ,
                self.work_dir / "peer.log",
            ),
        )
        # All at once, as the launcher starts them: the gateway declares the streams and
        # buckets, the others wait for them.
        everything = [*self.gateways, *self.history, *self.engines, self.peer]
        for service in everything:
            await service.process.start()
        await self.wait_ready(everything)

    async def wait_ready(self, services: Sequence[Service]) -> None:
        await wait_all_ready({s.name: s.spec.readiness_url for s in services}, READY_TIMEOUT_S)

    async def restart(self, service: Service) -> None:
        await service.process.wait_exit(STOP_GRACE_S)
        await service.process.start()
        await self.wait_ready([service])

    async def stop(self) -> None:
        services = [*self.gateways, *self.engines, *self.history]
        await asyncio.gather(*(s.process.stop() for s in services))
        if self.peer is not None:
            await self.peer.process.stop()
        await asyncio.gather(*(node.process.stop() for node in self.nats_nodes))
        if self.ferretdb is not None:
            await self.ferretdb.stop()

    def client(self, gateway_url: str, timeout_s: float = 30.0) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=gateway_url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=timeout_s,
            trust_env=False,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
        )
