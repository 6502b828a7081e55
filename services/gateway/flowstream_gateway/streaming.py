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
from urllib.parse import quote

from fastapi.responses import JSONResponse

from flowstream_gateway.admission import StreamTicket
from flowstream_gateway.dify_wire import dify_frame
from flowstream_gateway.errors import error_response
from flowstream_gateway.hub import Signal, StreamedEvent
from flowstream_gateway.runs import RunHandle, RunService
from flowstream_gateway.settings import GatewaySettings
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


RETRY_MS = 1000


def _resume(source: EventSource, url: str, cursor: int) -> bytes:
    """`retry:` and `id:` make an EventSource reconnect with Last-Event-ID; the data says the
    same to clients that read frames themselves. No `[DONE]`: the run has not ended."""
    body = {
        "event": "resume",
        "workflow_run_id": source.run_id,
        "task_id": source.task_id,
        "data": {"url": url, "last_event_id": str(cursor) if cursor else None},
    }
    frame = b"retry: %d\n" % RETRY_MS
    if cursor:
        frame += b"id: %d\n" % cursor
    return frame + b"event: resume\ndata: " + json.dumps(body).encode() + b"\n\n"


def api_framing(settings: GatewaySettings) -> Framing:
    return Framing(
        event=lambda e: b"id: %d\ndata: %s\n\n" % (e.cursor, e.payload),
        done=b"data: [DONE]\n\n",
        error=_api_error,
        resume=lambda s, c: _resume(s, f"/api/executions/{s.run_id}/events", c),
        keepalive=b": ping\n\n",
        keepalive_every_s=settings.sse_keepalive_s,
        send_timeout_s=settings.stream_send_timeout_s,
    )


def dify_framing(settings: GatewaySettings, end_user: str | None = None) -> Framing:
    reattach = "/v1/workflow/{run}/events" + (f"?user={quote(end_user)}" if end_user else "")
    return Framing(
        event=lambda e: dify_frame(e.event, e.payload),
        done=None,
        error=_dify_error,
        resume=lambda s, c: _resume(s, reattach.format(run=s.run_id), c),
        keepalive=b"event: ping\n\n",
        keepalive_every_s=settings.dify_ping_s,
        send_timeout_s=settings.stream_send_timeout_s,
    )


def _cancel_later(runs: RunService, run_id: str, reason: str) -> None:
    task = asyncio.get_running_loop().create_task(runs.cancel(run_id, reason))
    _background.add(task)
    task.add_done_callback(_background.discard)


def stream_run(
    handle: EventSource,
    runs: RunService,
    framing: Framing,
    on_disconnect: OnDisconnect,
    ticket: StreamTicket | None = None,
) -> RunEventStream:
    """`ticket`: the caller's open-stream quota, given back when the stream ends."""

    def on_end(ended: EventSource, why: Signal | None) -> None:
        if ticket is not None:
            ticket.release()
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
    if finished is Signal.LOST:
        _cancel_later(runs, handle.run_id, LOST_MESSAGE)
        return error_response(504, "timeout", LOST_MESSAGE)
    if finished is Signal.SHUTDOWN:
        return error_response(
            503,
            "service_unavailable",
            f"this gateway is restarting; run {handle.run_id} goes on: follow it at "
            f"/api/executions/{handle.run_id}/events or read it at /api/executions/"
            f"{handle.run_id}",
            {"Retry-After": "1", "Location": f"/api/executions/{handle.run_id}"},
        )
    assert isinstance(finished, StreamedEvent)
    return JSONResponse(blocking_body(handle, json.loads(finished.payload)))
