"""The peer: the same three-step workflow on Restate, measured in the same run, the same way.

Installed by the benchmark into `bench/.cache/restate/` (git-ignored), never into the project:
`@restatedev/restate-server` from npm (its platform binary comes as an optional dependency,
`@restatedev/restate-server-linux-x64`; install scripts are not run), and `restate-sdk` with
hypercorn from PyPI into a virtualenv of its own made by uv. Then:

1. restate-server starts with its own base directory and free ports (TCP only, loopback, telemetry
   off), otherwise with its shipped defaults;
2. `bench.restate_greeter` is served by hypercorn (one process, like our one engine) and
   registered through the admin API;
3. wrk drives it as it drives our gateway (`bench.load`): `POST /Greet/run` on the ingress, one
   request per run, answered when the last step is journaled, at 1, 32 and 256 connections, with
   the CPU of restate-server and of the service (hypercorn and its worker) read around each.

Any failure is returned as `{"error": ...}` so the rest of the benchmark still reports.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from flowstream_launcher.nats_server import free_port

from bench import load, wrk
from bench.procs import Helper, helper_process, log, wait_http_ok
from bench.settings import CACHE_DIR, ROOT, BenchSettings
from bench.workflows import INPUTS

RESTATE_SERVER_VERSION = "1.7.12"
RESTATE_SDK_VERSION = "1.3.0"
HYPERCORN_VERSION = "0.18.0"
INSTALL_TIMEOUT_S = 600.0
RUN_PATH = "/Greet/run"
# The whole answer of a successful run (the greeter returns `{"answer": ...}`).
ANSWER = ('"answer"', "Hello bench!")


class PeerUnavailable(RuntimeError):
    """The peer cannot be installed or run here; the message says why."""


async def _run(argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=INSTALL_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise PeerUnavailable(
            f"`{' '.join(argv[:3])} ...` took over {INSTALL_TIMEOUT_S:g} s"
        ) from None
    text = output.decode(errors="replace")
    if process.returncode != 0:
        tail = "\n".join(text.splitlines()[-15:])
        raise PeerUnavailable(f"`{' '.join(argv[:4])} ...` failed ({process.returncode}):\n{tail}")
    return text


def _server_binary(npm_dir: Path) -> Path:
    platform_package = {"linux": "linux", "darwin": "darwin"}.get(sys.platform, sys.platform)
    arch = {"x86_64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(os.uname().machine, "")
    return (
        npm_dir
        / "node_modules"
        / "@restatedev"
        / f"restate-server-{platform_package}-{arch}"
        / "bin"
        / "restate-server"
    )


def _uv() -> str:
    beside = ROOT / ".tools" / "bin" / "uv"
    found = str(beside) if beside.exists() else shutil.which("uv")
    if found is None:
        raise PeerUnavailable("no uv to build the peer's virtualenv (`make install` provides one)")
    return found


async def install(cache: Path = CACHE_DIR / "restate") -> tuple[Path, Path]:
    """The restate-server binary and the SDK virtualenv's python, installed once per version."""
    npm_dir = cache / f"server-{RESTATE_SERVER_VERSION}"
    binary = _server_binary(npm_dir)
    if not binary.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise PeerUnavailable("npm is not on PATH: cannot install @restatedev/restate-server")
        log(f"restate: installing @restatedev/restate-server@{RESTATE_SERVER_VERSION} (npm)")
        npm_dir.mkdir(parents=True, exist_ok=True)
        await _run(
            [
                npm, "install", "--prefix", str(npm_dir), "--no-audit", "--no-fund",
                "--ignore-scripts", "--loglevel=error",
                f"@restatedev/restate-server@{RESTATE_SERVER_VERSION}",
            ]
        )  # fmt: skip
        if not binary.exists():
            raise PeerUnavailable(
                f"npm installed no platform binary for {sys.platform}/{os.uname().machine} "
                f"(looked for {binary.relative_to(cache)})"
            )
    venv = cache / f"sdk-{RESTATE_SDK_VERSION}-hypercorn-{HYPERCORN_VERSION}"
    python = venv / "bin" / "python"
    if not (venv / ".installed").exists():
        log(f"restate: installing restate-sdk=={RESTATE_SDK_VERSION} (PyPI) into {venv}")
        uv = _uv()
        env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
        env.pop("VIRTUAL_ENV", None)
        await _run(
            [uv, "venv", "--quiet", "--clear", "--python", sys.executable, str(venv)], env=env
        )
        await _run(
            [
                uv, "pip", "install", "--quiet", "--python", str(python),
                f"restate-sdk=={RESTATE_SDK_VERSION}", f"hypercorn=={HYPERCORN_VERSION}",
            ],
            env=env,
        )  # fmt: skip
        (venv / ".installed").touch()
    return binary, python


def _server_env(ports: dict[str, int]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESTATE_")}
    env.update(
        {
            "RESTATE_INGRESS__BIND_PORT": str(ports["ingress"]),
            "RESTATE_ADMIN__BIND_PORT": str(ports["admin"]),
            "RESTATE_BIND_PORT": str(ports["fabric"]),
            "RESTATE_BIND_IP": "127.0.0.1",
            "RESTATE_LISTEN_MODE": "tcp",
            "RESTATE_DISABLE_TELEMETRY": "true",
            "RESTATE_LOG_FILTER": "warn",
            "RESTATE_LOG_DISABLE_ANSI_CODES": "true",
        }
    )
    return env


async def _register(admin: str, deployment: str, server: Helper) -> None:
    async with httpx.AsyncClient(base_url=admin, trust_env=False, timeout=30) as client:
        response = await client.post("/deployments", json={"uri": deployment, "force": True})
        if response.status_code not in (200, 201):
            raise PeerUnavailable(
                f"registering {deployment} failed: HTTP {response.status_code} "
                f"{response.text[:300]}\n{server.tail()}"
            )


async def _first_success(ingress: str, timeout_s: float = 30.0) -> None:
    """The ingress may learn of a new deployment a moment after the admin API answered."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=ingress, trust_env=False, timeout=30) as client:
        while True:
            try:
                response = await client.post(RUN_PATH, json=INPUTS)
                if response.status_code == 200:
                    return
                problem = f"HTTP {response.status_code}: {response.text[:200]}"
            except httpx.HTTPError as exc:
                problem = str(exc)
            if time.monotonic() > deadline:
                raise PeerUnavailable(f"the Greet service never answered: {problem}")
            await asyncio.sleep(0.2)


async def _version(binary: Path) -> str:
    return (await _run([str(binary), "--version"])).strip()


async def measure(
    settings: BenchSettings, between: Callable[[], Awaitable[object]]
) -> dict[str, Any]:
    try:
        return await _measure(settings, between)
    except (RuntimeError, OSError, TimeoutError, httpx.HTTPError) as exc:  # PeerUnavailable too
        log(f"restate: not measured: {exc}")
        return {"error": str(exc)}


async def _measure(
    settings: BenchSettings, between: Callable[[], Awaitable[object]]
) -> dict[str, Any]:
    binary, python = await install()
    ports = {name: free_port() for name in ("ingress", "admin", "fabric", "service")}
    with tempfile.TemporaryDirectory(prefix="flowstream-bench-restate-") as tmp:
        server_argv = [str(binary), "--no-logo", "--base-dir", tmp, "--node-name", "bench"]
        async with helper_process("restate-server", server_argv, env=_server_env(ports)) as server:
            admin = f"http://127.0.0.1:{ports['admin']}"
            await wait_http_ok(f"{admin}/health", server, timeout_s=90)
            service_argv = [
                str(python), "-m", "hypercorn", "bench.restate_greeter:app",
                "--bind", f"127.0.0.1:{ports['service']}", "--workers", "1",
            ]  # fmt: skip
            async with helper_process("restate-greeter", service_argv, cwd=ROOT) as service:
                deployment = f"http://127.0.0.1:{ports['service']}"
                await wait_http_ok(f"{deployment}/health", service)
                await _register(admin, deployment, server)
                ingress = f"http://127.0.0.1:{ports['ingress']}"
                await _first_success(ingress)
                target = wrk.Target(ingress + RUN_PATH, json.dumps(INPUTS).encode(), ANSWER)
                await load.warm_up(target)
                processes = {
                    "restate-server": server.process.pid,
                    "restate-service": service.process.pid,
                }
                detail = await load.ladder("restate", target, settings.seconds, processes, between)
                for helper in (server, service):
                    if helper.process.returncode is not None:
                        raise PeerUnavailable(f"{helper.name} exited:\n{helper.tail()}")
            version = await _version(binary)
    return {
        "server": version,
        "sdk": f"restate-sdk {RESTATE_SDK_VERSION}, hypercorn {HYPERCORN_VERSION}",
        **load.summary(detail),
        "detail": detail,
    }
