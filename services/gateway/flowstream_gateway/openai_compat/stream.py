"""Sends a run's events, translated by a writer, as one Server-Sent Events response.

Reads the run's feed queue (events and signals), asks the writer for the bytes of each event,
and sends everything queued at one wake-up in one write. A client that leaves, or a run lost
past its deadline, is reported to `on_abandon` so the run can be cancelled, as the seed API
does. Keep-alives are SSE comments, which OpenAI clients skip.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Protocol

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from flowstream_gateway.hub import RunFeed, Signal, StreamedEvent
from flowstream_gateway.runs import RunHandle

KEEPALIVE = b": keep-alive\n\n"
LOST_MESSAGE = "the run did not finish by its deadline; it has been cancelled"


class StreamWriter(Protocol):
    def opening(self) -> bytes: ...

    def on_event(self, item: StreamedEvent) -> bytes: ...

    def lost(self, message: str) -> bytes: ...


class TranslatedRunStream(Response):
    def __init__(
        self,
        handle: RunHandle,
        writer: StreamWriter,
        keepalive_s: float,
        on_abandon: Callable[[str, str], None],
    ) -> None:
        super().__init__(media_type="text/event-stream")
        self._handle = handle
        self._writer = writer
        self._keepalive_s = keepalive_s
        self._on_abandon = on_abandon  # (run id, reason)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handle, writer = self._handle, self._writer
        queue = handle.feed.queue
        loop = asyncio.get_running_loop()
        watcher = loop.create_task(_watch_disconnect(receive, handle.feed))
        keepalive = _Repeating(loop, self._keepalive_s, lambda: queue.put_nowait(Signal.KEEPALIVE))
        deadline = handle.arm_deadline()
        # Only the client leaving stops the run: a stream the server ends or cancels does not.
        abandoned: str | None = None
        try:
            headers = [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-cache"),
                (b"x-accel-buffering", b"no"),
                (b"x-flowstream-run-id", handle.run_id.encode()),
            ]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": writer.opening(), "more_body": True})
            ended = False
            while not ended:
                body = bytearray()
                item = await queue.get()
                while True:
                    if item is Signal.DISCONNECTED:
                        abandoned = "Client disconnected."
                        return
                    if item is Signal.SHUTDOWN:
                        ended = True  # this replica is stopping; the run goes on
                    elif item is Signal.KEEPALIVE:
                        body += KEEPALIVE
                    elif item is Signal.LOST:
                        body += writer.lost(LOST_MESSAGE)
                        abandoned, ended = LOST_MESSAGE, True
                    elif isinstance(item, StreamedEvent):
                        body += writer.on_event(item)
                        if item.is_final:
                            abandoned, ended = None, True
                    if ended or queue.empty():
                        break
                    item = queue.get_nowait()
                if body or ended:
                    await send(
                        {"type": "http.response.body", "body": bytes(body), "more_body": not ended}
                    )
        except OSError:
            abandoned = "Client disconnected."
        finally:
            keepalive.cancel()
            deadline.cancel()
            watcher.cancel()
            handle.close()
            if abandoned is not None:
                self._on_abandon(handle.run_id, abandoned)


async def _watch_disconnect(receive: Receive, feed: RunFeed) -> None:
    with contextlib.suppress(OSError):
        while (await receive())["type"] != "http.disconnect":
            pass
    feed.queue.put_nowait(Signal.DISCONNECTED)


class _Repeating:
    """A repeating loop timer: no task and no per-event timeout."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, every_s: float, fire: Callable[[], None]
    ) -> None:
        self._loop, self._every_s, self._fire = loop, every_s, fire
        self._timer = loop.call_later(every_s, self._tick)

    def _tick(self) -> None:
        self._fire()
        self._timer = self._loop.call_later(self._every_s, self._tick)

    def cancel(self) -> None:
        self._timer.cancel()
