"""Turns a run's events into an SSE response or a blocking JSON answer.

`/api` and `/v1` differ only in framing: `/api` frames carry `id:` cursors, comment keep-alives and
a final `data: [DONE]`; Dify frames are bare `data:` lines, `event: ping` keep-alives and no
`[DONE]`. Frames are built as bytes straight from the payload NATS delivered: no re-encoding. The
Dify framing alone splices Dify's node type ids into the events that carry one (`dify_wire`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

from fastapi.responses import JSONResponse

from flowstream_gateway.dify_wire import dify_frame
from flowstream_gateway.errors import error_response
from flowstream_gateway.hub import Signal
from flowstream_gateway.runs import RunHandle, RunService
from flowstream_gateway.sse import LOST_MESSAGE, EventSource, Framing, RunEventStream

OnDisconnect = Literal["cancel", "continue"]
DISCONNECT_REASON = "Client disconnected."

# Cancels scheduled from a closing stream; held so they are not garbage-collected mid-flight.
_background: set[asyncio.Task[None]] = set()


def _api_error(source: EventSource, code: str, status: int, message: str) -> bytes:
    body = {
        "event": "error",
        "workflow_run_id": source.run_id,
        "task_id": source.task_id,
        "data": {"code": code, "status": status, "message": message},
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def _dify_error(source: EventSource, code: str, status: int, message: str) -> bytes:
    body = {
        "event": "error",
        "workflow_run_id": source.run_id,
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
        keepalive=b": ping\n\n",
        keepalive_every_s=keepalive_s,
    )


def dify_framing(ping_s: float) -> Framing:
    return Framing(
        event=lambda e: dify_frame(e.event, e.payload),
        done=None,
        error=_dify_error,
        keepalive=b"event: ping\n\n",
        keepalive_every_s=ping_s,
    )


def _cancel_later(runs: RunService, run_id: str, reason: str) -> None:
    task = asyncio.get_running_loop().create_task(runs.cancel(run_id, reason))
    _background.add(task)
    task.add_done_callback(_background.discard)


def stream_run(
    handle: EventSource, runs: RunService, framing: Framing, on_disconnect: OnDisconnect
) -> RunEventStream:
    def on_end(ended: EventSource, why: Signal | None) -> None:
        if why is Signal.LOST or (why is Signal.DISCONNECTED and on_disconnect == "cancel"):
            _cancel_later(
                runs, ended.run_id, LOST_MESSAGE if why is Signal.LOST else DISCONNECT_REASON
            )

    return RunEventStream(handle, framing, on_end)


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
        finished = await handle.wait_finished()
    finally:
        handle.close()
    if finished is None:
        _cancel_later(runs, handle.run_id, LOST_MESSAGE)
        return error_response(504, "timeout", LOST_MESSAGE)
    return JSONResponse(blocking_body(handle, json.loads(finished.payload)))
