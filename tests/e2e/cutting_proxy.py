"""A TCP proxy in front of the gateway that drops one streaming response mid-way, as a broken
network or a load balancer would: the test of a client's automatic resume against the real stack.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


@dataclass
class CuttingProxy:
    upstream_port: int
    # The first response to a request starting with `request_prefix` is cut right after the
    # first SSE frame that contains `marker`, in the middle of the next one.
    request_prefix: bytes
    marker: bytes
    port: int = 0
    requests: list[bytes] = field(default_factory=list)
    cut: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _pipe_up(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, chosen: asyncio.Event
    ) -> None:
        while data := await reader.read(65536):
            self.requests.append(data)
            if data.startswith(self.request_prefix) and not self.cut.is_set():
                chosen.set()
            writer.write(data)
            await writer.drain()

    async def _pipe_down(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, chosen: asyncio.Event
    ) -> None:
        seen = b""
        while data := await reader.read(65536):
            if chosen.is_set() and not self.cut.is_set():
                seen += data
                at = seen.find(self.marker)
                end = seen.find(b"\n\n", at) if at >= 0 else -1
                if end >= 0:
                    already = len(seen) - len(data)
                    # Up to the frame's end, and a few bytes of the next: a frame cut in two.
                    writer.write(data[: max(end + 2 + 12 - already, 0)])
                    await writer.drain()
                    self.cut.set()
                    raise ConnectionAbortedError
            writer.write(data)
            await writer.drain()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        upstream_r, upstream_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        chosen = asyncio.Event()
        tasks = [
            asyncio.create_task(self._pipe_up(client_r, upstream_w, chosen)),
            asyncio.create_task(self._pipe_down(upstream_r, client_w, chosen)),
        ]
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        for task in done:
            task.exception()  # a cut or a reset connection: expected, and retrieved
        for writer in (client_w, upstream_w):
            writer.transport.abort()


@contextlib.asynccontextmanager
async def cutting_proxy(
    upstream_port: int, request_prefix: bytes, marker: bytes
) -> AsyncIterator[CuttingProxy]:
    proxy = CuttingProxy(upstream_port, request_prefix, marker)
    server = await asyncio.start_server(proxy._handle, "127.0.0.1", 0)
    proxy.port = server.sockets[0].getsockname()[1]
    try:
        yield proxy
    finally:
        server.close()
        await server.wait_closed()
