"""Render processes: where templates that could run long render, off the engine's event loop.

The engine runs many runs on one event loop, so a template that loops for a second would stall
every other run for that second; in a thread it would still take the loop's turns (the GIL), and
no thread can be stopped. A render process can: it renders under the budget of `TemplateLimits`
and its own memory cap, and one that does not answer within twice its CPU budget (plus a second)
is killed and replaced. At most `workers` processes render at once; further renders wait for one.
Processes start when first needed (or at `start`) and are reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import sys
from typing import Any

from flowstream_shared.sandbox import BudgetExceeded, ExpressionError

from flowstream_engine.limits import RunLimits
from flowstream_engine.render import protocol

log = logging.getLogger(__name__)

# Starting a process (an interpreter and its imports) is not part of any render's budget.
START_TIMEOUT_S = 60.0


class _Process:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, limits: RunLimits) -> _Process:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "flowstream_engine.render.child",
            json.dumps(dataclasses.asdict(limits.template)),
            str(limits.render_memory_bytes),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        started = cls(process)
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                if await started._receive() != protocol.READY.decode():
                    raise RuntimeError("the render process did not start")
        except BaseException:
            started.kill()
            raise
        return started

    async def call(self, request: protocol.Request) -> protocol.Reply:
        assert self.process.stdin is not None
        self.process.stdin.write(protocol.encode(request))
        await self.process.stdin.drain()
        reply: protocol.Reply = await self._receive()
        return reply

    async def _receive(self) -> Any:
        assert self.process.stdout is not None
        header = await self.process.stdout.readexactly(protocol.HEADER_BYTES)
        payload = await self.process.stdout.readexactly(protocol.frame_length(header))
        return protocol.decode(payload)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()

    async def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()  # the process ends when its input does
        try:
            async with asyncio.timeout(2):
                await self.process.wait()
        except TimeoutError:
            self.kill()
            await self.process.wait()


class RenderPool:
    def __init__(self, limits: RunLimits) -> None:
        self.limits = limits
        self._slots = asyncio.Semaphore(limits.render_workers)
        self._idle: list[_Process] = []
        self._all: set[_Process] = set()
        self._reaping: set[asyncio.Task[int]] = set()
        # Twice the CPU budget, and a second more: a render that is still checking its budget
        # fails on its own before this, with a clearer message.
        self.timeout_s = 2 * limits.template.cpu_seconds + 1.0

    async def start(self) -> None:
        """Start every process now, so the first renders do not wait for one."""
        missing = self.limits.render_workers - len(self._all)
        started = await asyncio.gather(*(_Process.start(self.limits) for _ in range(missing)))
        self._all.update(started)
        self._idle.extend(started)

    async def render(self, request: protocol.Request) -> Any:
        """The result of one render; raises ExpressionError with the render's message."""
        async with self._slots:
            process = self._idle.pop() if self._idle else await self._new()
            try:
                async with asyncio.timeout(self.timeout_s):
                    reply = await process.call(request)
            except TimeoutError:
                self._discard(process)
                raise BudgetExceeded(
                    f"template exceeded its CPU budget of {self.limits.template.cpu_seconds:g}s "
                    "(its render process was stopped)"
                ) from None
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                self._discard(process)
                raise ExpressionError(
                    "the template's render process ended without an answer (it went past its "
                    f"memory budget of {self.limits.render_memory_bytes >> 20} MiB, or crashed)"
                ) from exc
            except BaseException:  # cancelled mid-render: the process may still be busy
                self._discard(process)
                raise
            if reply.get("restart"):
                self._discard(process)
            else:
                self._idle.append(process)
        if "error" in reply:
            raise ExpressionError(reply["error"])
        return reply.get("ok")

    async def _new(self) -> _Process:
        process = await _Process.start(self.limits)
        self._all.add(process)
        return process

    def _discard(self, process: _Process) -> None:
        process.kill()
        self._all.discard(process)
        # Reap it in the background: its exit status is not worth waiting for here.
        reaping = asyncio.get_running_loop().create_task(process.process.wait())
        self._reaping.add(reaping)
        reaping.add_done_callback(self._reaping.discard)

    async def close(self) -> None:
        processes, self._all, self._idle = self._all, set(), []
        await asyncio.gather(*(p.stop() for p in processes), return_exceptions=True)

    @property
    def size(self) -> int:
        return len(self._all)
