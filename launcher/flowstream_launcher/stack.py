"""`run`: the whole stack on one machine, until a signal or until one of its processes dies.

Everything is registered for cleanup the moment it is started (an AsyncExitStack), so every way out,
a failure halfway through startup included, stops what was started: services first, NATS last.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import sys
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
from flowstream_shared import subjects
from flowstream_shared.nats_access import Identity

from flowstream_launcher.banner import nats_line, render_banner
from flowstream_launcher.dev_auth import DEV_USER, issue_token, jwt_secret
from flowstream_launcher.examples import Example, ExampleError, load_examples, read_examples
from flowstream_launcher.nats_auth import NatsAuth
from flowstream_launcher.nats_server import NatsServer, NatsServerError, start_nats_server
from flowstream_launcher.readiness import NotReadyError, wait_all_ready
from flowstream_launcher.security_env import credentials_private_key, egress_note, security_env
from flowstream_launcher.service_process import ServiceSpec
from flowstream_launcher.settings import LauncherSettings
from flowstream_launcher.stop_signals import StopSignals, stop_signals
from flowstream_launcher.supervisor import Supervisor


class StartupError(RuntimeError):
    """The stack cannot start as configured; the message says what to change."""


def service_specs(settings: LauncherSettings) -> list[ServiceSpec]:
    return [
        ServiceSpec("engine", "flowstream_engine", settings.engine_port),
        ServiceSpec("history", "flowstream_history", settings.history_port),
        ServiceSpec("gateway", "flowstream_gateway", settings.gateway_port),
    ]


# Secrets are handed to the one service that uses them and stripped from everyone else's
# environment: a workflow running in the engine can never find the JWT secret there.
SECRET_SETTINGS = {
    "gateway": frozenset(
        {
            "FLOWSTREAM_JWT_SECRET",
            "FLOWSTREAM_CREDENTIALS_PUBLIC_KEY",
            "FLOWSTREAM_NATS_CALLOUT_USER",
            "FLOWSTREAM_NATS_CALLOUT_PASSWORD",
            "FLOWSTREAM_NATS_CALLOUT_ISSUER_SEED",
        }
    ),
    "engine": frozenset({"FLOWSTREAM_CREDENTIALS_PRIVATE_KEY"}),
    "history": frozenset({"FLOWSTREAM_MONGODB_URI"}),
}
_NATS_IDENTITY = (
    "FLOWSTREAM_NATS_USER",
    "FLOWSTREAM_NATS_PASSWORD",
    "FLOWSTREAM_NATS_TOKEN",
    "FLOWSTREAM_NATS_NKEY_SEED",
    "FLOWSTREAM_NATS_CREDS_FILE",
)


def service_env(
    service: str,
    settings: LauncherSettings,
    nats_address: str,
    nats_auth: NatsAuth | None,
    computed: dict[str, str],
) -> dict[str, str]:
    """One service's environment: the caller's, less every secret that is not this service's,
    plus what the launcher decided (ports, NATS address and this service's NATS identity)."""
    foreign = set().union(*(v for k, v in SECRET_SETTINGS.items() if k != service))
    env = {k: v for k, v in os.environ.items() if k not in foreign}
    env |= {k: v for k, v in computed.items() if k not in foreign}
    if nats_auth is not None:  # a NATS whose identities we know: each service is its own
        for name in _NATS_IDENTITY:
            env.pop(name, None)
        env |= nats_auth.env_for(Identity(service))
    return env | {
        "FLOWSTREAM_NATS_URL": nats_address,
        # Explicit, so the services listen where the launcher probes whatever their own defaults.
        "FLOWSTREAM_DATA_DIR": str(settings.data_dir.resolve()),
        "FLOWSTREAM_GATEWAY_PORT": str(settings.gateway_port),
        "FLOWSTREAM_ENGINE_PORT": str(settings.engine_port),
        "FLOWSTREAM_HISTORY_PORT": str(settings.history_port),
        "PYTHONUNBUFFERED": "1",  # their output is a pipe: relay lines as they are written
    }


async def run_stack(settings: LauncherSettings) -> int:
    """Run until SIGINT/SIGTERM (exit status 0) or a failure (status 1)."""
    with stop_signals() as signals:
        try:
            async with AsyncExitStack() as cleanup:
                return await _run(settings, signals, cleanup)
        except (StartupError, NatsServerError, ExampleError) as exc:
            _say(str(exc))
            return 1
        finally:
            _say("stopped")


async def _run(settings: LauncherSettings, signals: StopSignals, cleanup: AsyncExitStack) -> int:
    specs = service_specs(settings)
    _check_ports_free(_ports_to_bind(settings, specs))
    examples = _read_examples(settings)
    secret = jwt_secret(settings, create=True)
    nats: NatsServer | None = None
    nats_auth: NatsAuth | None = None
    nats_address = settings.nats_url
    if nats_address is None:
        nats_auth = NatsAuth.load_or_create(settings.nats_auth_file)
        nats = await start_nats_server(
            settings.nats_port,
            settings.nats_store_dir,
            echo=True,
            own_session=True,
            auth=nats_auth,
        )
        cleanup.push_async_callback(nats.stop)
        nats_address = nats.address
    elif settings.nats_identities_file is not None:
        nats_auth = _identities(settings.nats_identities_file)
    supervisor = Supervisor(hurry=signals.hurry)
    cleanup.push_async_callback(supervisor.stop)
    computed = {"FLOWSTREAM_JWT_SECRET": secret}
    computed |= security_env(settings, nats, credentials_private_key(settings))
    for spec in specs:
        await supervisor.start(
            spec, service_env(spec.name, settings, nats_address, nats_auth, computed)
        )

    stop = asyncio.create_task(signals.requested.wait())
    died = asyncio.create_task(_first_exit(supervisor, nats))
    startup = asyncio.create_task(_become_ready(settings, specs, secret, examples, nats_address))
    try:
        done, _ = await asyncio.wait({stop, died, startup}, return_when=asyncio.FIRST_COMPLETED)
        if stop in done:
            return 0
        if died in done:
            name, status = died.result()
            _say(f"{name} exited with status {status} before it was ready")
            return 1
        try:
            banner = startup.result()
        except (NotReadyError, ExampleError, httpx.HTTPError) as exc:
            _say(f"could not start: {exc}")
            return 1
        print(banner, flush=True)

        done, _ = await asyncio.wait({stop, died}, return_when=asyncio.FIRST_COMPLETED)
        if stop in done:
            return 0
        name, status = died.result()
        _say(f"{name} exited unexpectedly with status {status}")
        return 1
    finally:
        for task in (stop, died, startup):
            task.cancel()
        await asyncio.gather(stop, died, startup, return_exceptions=True)


def _identities(path: Path) -> NatsAuth:
    try:
        return NatsAuth.load(path)
    except (OSError, ValueError, KeyError) as exc:
        raise StartupError(
            f"cannot read the NATS identities in {path} (FLOWSTREAM_NATS_IDENTITIES_FILE): {exc}"
        ) from exc


def _read_examples(settings: LauncherSettings) -> list[Example]:
    if not settings.examples_dir.is_dir():
        _say(f"no examples to load: {settings.examples_dir} is not a directory")
        return []
    return read_examples(settings.examples_dir)


async def _become_ready(
    settings: LauncherSettings,
    specs: list[ServiceSpec],
    secret: str,
    examples: list[Example],
    nats_address: str,
) -> str:
    """Wait for every service, load the examples, and return the banner to print."""
    await wait_all_ready({s.name: s.readiness_url for s in specs}, settings.ready_timeout_s)
    token = issue_token(secret)
    async with httpx.AsyncClient(
        base_url=settings.gateway_url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10.0,
        trust_env=False,
    ) as client:
        ids = await load_examples(client, examples)
    nats = nats_line(nats_address, f"{subjects.EVENTS_PREFIX}.{subjects.owner_token(DEV_USER)}")
    return render_banner(settings.gateway_url, token, ids.get("greet"), egress_note(settings), nats)


async def _first_exit(supervisor: Supervisor, nats: NatsServer | None) -> tuple[str, int]:
    """The first of the stack's processes to exit: its name and exit status."""
    watchers = [asyncio.create_task(supervisor.first_exit())]
    if nats is not None:
        watchers.append(asyncio.create_task(_named_exit("nats-server", nats.process)))
    try:
        done, _ = await asyncio.wait(watchers, return_when=asyncio.FIRST_COMPLETED)
        return next(iter(done)).result()
    finally:
        for watcher in watchers:
            watcher.cancel()


async def _named_exit(name: str, process: asyncio.subprocess.Process) -> tuple[str, int]:
    return name, await process.wait()


def _ports_to_bind(settings: LauncherSettings, specs: list[ServiceSpec]) -> dict[str, int]:
    """What the stack will listen on, by the variable that moves it."""
    ports = {f"FLOWSTREAM_{spec.name.upper()}_PORT": spec.port for spec in specs}
    if settings.nats_url is None:
        ports["FLOWSTREAM_NATS_PORT (or FLOWSTREAM_NATS_URL to use a running NATS)"] = (
            settings.nats_port
        )
    return ports


def _check_ports_free(ports: dict[str, int]) -> None:
    """Refuse a taken port up front: otherwise another program's /readyz could pass for ours."""
    for variable, port in ports.items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            # As the servers will bind: a port left in TIME_WAIT by the last run counts as free.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                raise StartupError(
                    f"port {port} is in use: stop what uses it or set {variable}"
                ) from exc


def _say(message: str) -> None:
    print(f"flowstream: {message}", file=sys.stderr, flush=True)
