"""The peer: the same three-step workflow on Restate, measured in the same run, the same way.

Installed by the benchmark into `bench/.cache/restate/` (git-ignored), never into the project:
`@restatedev/restate-server` from npm (its platform binary comes as an optional dependency,
`@restatedev/restate-server-linux-x64`; install scripts are not run), and `restate-sdk` with
hypercorn from PyPI into a virtualenv of its own made by uv. Then:

1. restate-server starts with its own base directory and free ports (TCP only, loopback, telemetry
   off), otherwise with its shipped defaults;
2. `bench.restate_greeter` is served by hypercorn (one process, like our one engine) and
   registered through the admin API;
3. the same client loop as ours (`bench.e2e`) calls `POST /Greet/run` on the ingress: one request
   per run, answered when the last step is journaled, at 1 and 32 clients.

Any failure is returned as `{"error": ...}` so the rest of the benchmark still reports.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
from flowstream_launcher.nats_server import free_port

from bench import e2e
from bench.procs import Helper, helper_process, log, wait_http_ok
from bench.settings import CACHE_DIR, ROOT, BenchSettings
from bench.workflows import INPUTS

RESTATE_SERVER_VERSION = "1.7.12"
RESTATE_SDK_VERSION = "1.3.0"
HYPERCORN_VERSION = "0.18.0"
INSTALL_TIMEOUT_S = 600.0
RUN_PATH = "/Greet/run"


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


async def _first_success(run: e2e.RunOnce, timeout_s: float = 30.0) -> None:
    """The ingress may learn of a new deployment a moment after the admin API answered."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            await run()
            return
        except (RuntimeError, httpx.HTTPError) as exc:
            if time.monotonic() > deadline:
                raise PeerUnavailable(f"the Greet service never answered: {exc}") from exc
            await asyncio.sleep(0.2)


async def _version(binary: Path) -> str:
    return (await _run([str(binary), "--version"])).strip()


async def measure(settings: BenchSettings) -> dict[str, Any]:
    try:
        return await _measure(settings)
    except (RuntimeError, OSError, TimeoutError, httpx.HTTPError) as exc:  # PeerUnavailable too
        log(f"restate: not measured: {exc}")
        return {"error": str(exc)}


async def _measure(settings: BenchSettings) -> dict[str, Any]:
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
                async with e2e.client(ingress) as client:
                    run = e2e.json_call(client, RUN_PATH, INPUTS)
                    await _first_success(run)
                    await e2e.sequential(run, 20)  # warm-up
                    c1 = await e2e.sequential(run, settings.runs)
                    c32 = await e2e.concurrent(run, 32, settings.seconds)
                for helper in (server, service):
                    if helper.process.returncode is not None:
                        raise PeerUnavailable(f"{helper.name} exited:\n{helper.tail()}")
            version = await _version(binary)
    return {
        "server": version,
        "sdk": f"restate-sdk {RESTATE_SDK_VERSION}, hypercorn {HYPERCORN_VERSION}",
        "p50_ms_c1": c1.p50_ms,
        "p99_ms_c1": c1.p99_ms,
        "runs_per_s": c32.runs_per_s,
        "p50_ms_c32": c32.p50_ms,
        "p99_ms_c32": c32.p99_ms,
        "detail": {"c1": asdict(c1), "c32": asdict(c32)},
    }
