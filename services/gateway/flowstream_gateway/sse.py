"""A lean Server-Sent Events response for one run.

Per stream it costs one task (watching for the client to leave) and two loop timers (keep-alive and
the run's deadline); events, keep-alives, a disconnect and a lost run all arrive through the run's
one queue, so the main loop is a single `await queue.get()` per frame. See
docs/adr/0004-lean-sse-response.md for why this is not sse-starlette or FastAPI's SSE.

A client that takes no bytes for `Framing.send_timeout_s` (a stalled reader: the write waits on flow
control while its events pile up in the queue) is dropped: the stream ends without cancelling
the run, and the client resumes from its last `id:` like after any dropped connection. Writes
take at most `MAX_WRITE_BYTES` at a time, so a stream's memory is bounded by what its run emits
in that time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from flowstream_gateway.hub import RunFeed, Signal, StreamedEvent

# One write takes at most this much of what is queued: the server's transport then waits for
# the client to take it (flow control) before the next, so a stalled reader is noticed by the
# send timeout instead of its whole run being buffered in the transport.
MAX_WRITE_BYTES = 64 << 10

HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class EventSource(Protocol):
    """A run's events in order: a run started by this request, or one attached to."""

    @property
    def feed(self) -> RunFeed: ...

    @property
    def run_id(self) -> str: ...

    @property
    def task_id(self) -> str: ...

    def arm_deadline(self) -> asyncio.TimerHandle: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Framing:
    event: Callable[[StreamedEvent], bytes]
    done: bytes | None
    error: Callable[[EventSource, str, int, str], bytes]
    # The last frame of a stream this replica cannot keep: where and from where to resume.
    resume: Callable[[EventSource, int], bytes]
    keepalive: bytes
    keepalive_every_s: float
    send_timeout_s: float  # a stalled reader is dropped after this long (its run goes on)


class RunEventStream(Response):
    def __init__(
        self,
        handle: EventSource,
        framing: Framing,
        on_end: Callable[[EventSource, Signal | None], None],
    ) -> None:
        super().__init__(media_type="text/event-stream")
        self._handle = handle
        self._framing = framing
        self._on_end = on_end  # told how the stream ended: None when the run finished

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handle, framing = self._handle, self._framing
        queue = handle.feed.queue
        loop = asyncio.get_running_loop()
        watcher = loop.create_task(_watch_disconnect(receive, handle.feed))
        keepalive = _Keepalive(loop, queue, framing.keepalive_every_s)
        deadline = handle.arm_deadline()
        # Only the client leaving (or its socket failing) counts as a disconnect: a stream
        # cancelled by the server stopping must never stop the run.
        ended_by: Signal | None = Signal.SHUTDOWN
        try:
            await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
            ended = False
            while not ended:
                # Everything already queued goes out in one write: one send per wake-up, not per
                # frame (a burst of events is many frames; each write is a syscall and a switch).
                body = bytearray()
                item = await queue.get()
                while True:
                    if item is Signal.DISCONNECTED:
                        ended_by = Signal.DISCONNECTED
                        return
                    if item is Signal.SHUTDOWN:
                        ended_by, ended = Signal.SHUTDOWN, True
                        body += framing.resume(handle, handle.feed.last_cursor)
                    elif item is Signal.KEEPALIVE:
                        body += framing.keepalive
                    elif item is Signal.LOST:
                        ended_by, ended = Signal.LOST, True
                        body += framing.error(handle, "timeout", 504, LOST_MESSAGE)
                    else:
                        assert isinstance(item, StreamedEvent)
                        body += framing.event(item)
                        if item.is_final:
                            ended_by, ended = None, True
                            body += framing.done or b""
                    if ended or queue.empty() or len(body) >= MAX_WRITE_BYTES:
                        break
                    item = queue.get_nowait()
                async with asyncio.timeout(framing.send_timeout_s):
                    await send(
                        {"type": "http.response.body", "body": bytes(body), "more_body": not ended}
                    )
        except OSError:
            ended_by = Signal.DISCONNECTED  # the client went away mid-write
        except TimeoutError:
            ended_by = Signal.SLOW  # a stalled reader: dropped, its run goes on
        finally:
            keepalive.cancel()
            deadline.cancel()
            watcher.cancel()
            handle.close()
            self._on_end(handle, ended_by)


LOST_MESSAGE = "the run did not finish by its deadline; it has been cancelled"


async def _watch_disconnect(receive: Receive, feed: RunFeed) -> None:
    with contextlib.suppress(OSError):
        while (await receive())["type"] != "http.disconnect":
            pass
    feed.queue.put_nowait(Signal.DISCONNECTED)


class _Keepalive:
    """A repeating loop timer: no task per stream, no timeout per event."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[StreamedEvent | Signal],
        every_s: float,
    ) -> None:
        self._loop = loop
        self._queue = queue
        self._every_s = every_s
        self._timer = loop.call_later(every_s, self._fire)

    def _fire(self) -> None:
        self._queue.put_nowait(Signal.KEEPALIVE)
        self._timer = self._loop.call_later(self._every_s, self._fire)

    def cancel(self) -> None:
        self._timer.cancel()
