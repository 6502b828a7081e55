"""One service (`python -m flowstream_<name>`) as a child process, its output relayed line by line.

Each child gets its own session (and so its own process group): a terminal's Ctrl-C reaches only the
launcher, which stops the children itself, and signalling the group also reaches anything a service
started, so no process outlives the launcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass

NAME_WIDTH = 7  # "history", the longest name, so the `|` columns line up
LINE_LIMIT = 1024 * 1024
# After the child exits, its output pipe normally closes at once; a grandchild may keep it open.
DRAIN_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    module: str
    port: int

    @property
    def readiness_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/readyz"


class ServiceProcess:
    def __init__(self, spec: ServiceSpec, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        self.spec = spec
        self.process = process
        self._relay = asyncio.create_task(_relay(process.stdout, f"{spec.name:<{NAME_WIDTH}} | "))
        # Done when the child has exited and its last lines are printed; carries the exit status.
        self.exited: asyncio.Task[int] = asyncio.create_task(self._wait_and_drain())

    @classmethod
    async def start(cls, spec: ServiceSpec, env: Mapping[str, str]) -> ServiceProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            spec.module,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,
            limit=LINE_LIMIT,
        )
        return cls(spec, process)

    async def stop(self, grace_s: float, hurry: asyncio.Event) -> None:
        """SIGTERM, then SIGKILL after `grace_s` (or as soon as `hurry` is set)."""
        if self.process.returncode is None:
            self._signal_group(signal.SIGTERM)
            hurried = asyncio.create_task(hurry.wait())
            await asyncio.wait(
                {self.exited, hurried}, timeout=grace_s, return_when=asyncio.FIRST_COMPLETED
            )
            hurried.cancel()
            if not self.exited.done():
                print(f"flowstream: killing {self.spec.name}", file=sys.stderr, flush=True)
        # Also sweeps up whatever the service started and left behind in its group.
        self._signal_group(signal.SIGKILL)
        await self.exited

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone
            os.killpg(self.process.pid, sig)

    async def _wait_and_drain(self) -> int:
        status = await self.process.wait()
        await asyncio.wait({self._relay}, timeout=DRAIN_TIMEOUT_S)
        self._relay.cancel()
        return status


async def _relay(stream: asyncio.StreamReader, prefix: str) -> None:
    while True:
        try:
            line = await stream.readline()
        except ValueError:  # longer than LINE_LIMIT: the reader dropped it
            line = b"(an overlong line was dropped)\n"
        if not line:
            return
        text = line.decode(errors="replace")
        sys.stdout.write(prefix + text if text.endswith("\n") else prefix + text + "\n")
        sys.stdout.flush()
