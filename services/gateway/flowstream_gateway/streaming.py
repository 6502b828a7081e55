"""Turns a run's events into an SSE response or a blocking JSON answer.

`/api` and `/v1` differ only in framing: `/api` frames carry `id:` cursors, comment keep-alives and
a final `data: [DONE]`; Dify frames are bare `data:` lines, `event: ping` keep-alives and no
`[DONE]`. Frames are built as bytes straight from the payload NATS delivered: no re-encoding.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal

from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from flowstream_gateway.errors import error_response
from flowstream_gateway.hub import StreamedEvent
from flowstream_gateway.runs import RunHandle, RunLost, RunService

log = logging.getLogger(__name__)

OnDisconnect = Literal["cancel", "continue"]
DISCONNECT_REASON = "Client disconnected."
LOST_MESSAGE = "the run did not finish by its deadline; it has been cancelled"

# Cancels scheduled from a closing stream; held so they are not garbage-collected mid-flight.
_background: set[asyncio.Task[None]] = set()


@dataclass(frozen=True)
class Framing:
    event: Callable[[StreamedEvent], bytes]
    done: bytes | None
    error: Callable[[RunHandle, str, int, str], bytes]
    ping: Callable[[], ServerSentEvent]
    ping_every_s: float


def _api_error(handle: RunHandle, code: str, status: int, message: str) -> bytes:
    body = {
        "event": "error",
        "workflow_run_id": handle.run_id,
        "task_id": handle.command.task_id,
        "data": {"code": code, "status": status, "message": message},
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def _dify_error(handle: RunHandle, code: str, status: int, message: str) -> bytes:
    body = {
        "event": "error",
        "workflow_run_id": handle.run_id,
        "code": code,
        "status": status,
        "message": message,
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def api_framing(keepalive_s: float) -> Framing:
    return Framing(
        event=lambda e: b"id: %d\ndata: %s\n\n" % (e.cursor, e.payload),
        done=b"data: [DONE]\n\n",
        error=_api_error,
        ping=lambda: ServerSentEvent(comment="ping"),
        ping_every_s=keepalive_s,
    )


def dify_framing(ping_s: float) -> Framing:
    return Framing(
        event=lambda e: b"data: %s\n\n" % e.payload,
        done=None,
        error=_dify_error,
        ping=lambda: ServerSentEvent(event="ping"),
        ping_every_s=ping_s,
    )


def _cancel_later(runs: RunService, run_id: str, reason: str) -> None:
    task = asyncio.get_running_loop().create_task(runs.cancel(run_id, reason))
    _background.add(task)
    task.add_done_callback(_background.discard)


def stream_run(
    handle: RunHandle, runs: RunService, framing: Framing, on_disconnect: OnDisconnect
) -> EventSourceResponse:
    async def frames() -> AsyncIterator[bytes]:
        try:
            async for event in handle.events():
                yield framing.event(event)
            if framing.done is not None:
                yield framing.done
        except RunLost:
            _cancel_later(runs, handle.run_id, LOST_MESSAGE)
            yield framing.error(handle, "timeout", 504, LOST_MESSAGE)
        finally:
            handle.close()
            # The generator is closed early only when the client went away.
            if not handle.finished and on_disconnect == "cancel":
                _cancel_later(runs, handle.run_id, DISCONNECT_REASON)

    return EventSourceResponse(
        frames(),
        ping=framing.ping_every_s,
        ping_message_factory=framing.ping,
        sep="\n",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        send_timeout=30,
    )


def blocking_body(handle: RunHandle, finished: dict[str, Any]) -> dict[str, Any]:
    data = finished["data"]
    return {
        "task_id": handle.command.task_id,
        "workflow_run_id": handle.run_id,
        "data": {
            key: data.get(key)
            for key in (
                "id",
                "workflow_id",
                "status",
                "outputs",
                "error",
                "elapsed_time",
                "total_tokens",
                "total_steps",
                "created_at",
                "finished_at",
            )
        },
    }


async def block_on_run(handle: RunHandle, runs: RunService) -> JSONResponse:
    try:
        async for event in handle.events():
            if event.is_final:
                return JSONResponse(blocking_body(handle, json.loads(event.payload)))
    except RunLost:
        _cancel_later(runs, handle.run_id, LOST_MESSAGE)
    finally:
        handle.close()
    return error_response(504, "timeout", LOST_MESSAGE)
