"""Processes the benchmark starts or looks at: /proc readings, helper processes, the fd limit."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def raise_fd_limit() -> int:
    """Raise the soft open-files limit to the hard one; children (the stack) inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft == resource.RLIM_INFINITY or soft >= hard:
        return hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def service_pid(module: str, port_var: str, port: int) -> int:
    """The pid of `python -m <module>` started with `<port_var>=<port>`, found through /proc."""
    want_env = f"{port_var}={port}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if module.encode() not in argv:
                continue
            if want_env in (entry / "environ").read_bytes().split(b"\0"):
                return int(entry.name)
        except OSError:  # gone, or not ours
            continue
    raise LookupError(f"no process `-m {module}` with {port_var}={port}")


def rss_kb(pid: int) -> int:
    """Resident set size from /proc/<pid>/statm (pages), in KiB."""
    resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return resident * PAGE_KB


@dataclass
class Helper:
    """A process the benchmark started; its output is kept for error messages."""

    name: str
    process: asyncio.subprocess.Process
    output: list[str] = field(default_factory=list)

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.output[-lines:])


@asynccontextmanager
async def helper_process(
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    keep_lines: int = 400,
) -> AsyncIterator[Helper]:
    """Start `argv` in its own process group; on exit SIGTERM the group, then SIGKILL."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    helper = Helper(name, process)

    async def relay() -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            helper.output.append(raw.decode(errors="replace").rstrip("\n"))
            if len(helper.output) > keep_lines:
                del helper.output[: keep_lines // 2]

    relay_task = asyncio.create_task(relay())
    try:
        yield helper
    finally:
        await _stop_group(process)
        relay_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay_task


async def _stop_group(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # whatever it started and left behind
    if process.returncode is None:
        await process.wait()


async def wait_http_ok(url: str, helper: Helper, timeout_s: float = 60.0) -> None:
    """Poll `url` until it answers 2xx; fail early, with its output, if the helper exits."""
    async with httpx.AsyncClient(trust_env=False, timeout=2.0) as client:
        async with asyncio.timeout(timeout_s):
            while True:
                if helper.process.returncode is not None:
                    raise RuntimeError(
                        f"{helper.name} exited with status {helper.process.returncode}:\n"
                        f"{helper.tail()}"
                    )
                try:
                    if (await client.get(url)).is_success:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)


async def wait_line(helper: Helper, marker: str, timeout_s: float = 30.0) -> None:
    """Wait until the helper has printed a line containing `marker`."""
    async with asyncio.timeout(timeout_s):
        while not any(marker in line for line in helper.output):
            if helper.process.returncode is not None:
                raise RuntimeError(f"{helper.name} exited:\n{helper.tail()}")
            await asyncio.sleep(0.05)


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def log(message: str) -> None:
    """Progress goes to stderr, so stdout carries only the table."""
    print(f"bench: {message}", file=sys.stderr, flush=True)
