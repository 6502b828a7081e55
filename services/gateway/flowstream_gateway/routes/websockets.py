"""WebSocket streams: one run (`/ws/executions/{id}`) or every run of the caller (`/ws`).

The token comes in an `Authorization: Bearer` header (clients that can set one), in `?token=`,
or as the first message, `{"token": "..."}` (browsers cannot set headers on a WebSocket). Each
event is one text message with the event's JSON, exactly the payload of the SSE frames, with
`type`, `execution_id`, `status` and `timestamp` added in front (`seed_views.ws_message`);
`/ws/executions/{id}` (also `/ws/{id}`) closes after `workflow_finished`. A quiet socket gets
`{"type": "heartbeat"}` every `FLOWSTREAM_WS_HEARTBEAT_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from flowstream_shared.subjects import owner_token

from flowstream_gateway.attach import AttachedRun
from flowstream_gateway.auth import Principal, principal_for
from flowstream_gateway.errors import ApiError
from flowstream_gateway.hub import Signal, StreamedEvent
from flowstream_gateway.seed_views import heartbeat_message, ws_message
from flowstream_gateway.services import Services

router = APIRouter(tags=["executions"])

# Close codes in the application range, mirroring the HTTP statuses.
UNAUTHORIZED, FORBIDDEN, NOT_FOUND, TIMEOUT = 4401, 4403, 4404, 4504
# The open-stream quota is full: the quota error body's status, as 4000 + HTTP status.
TRY_AGAIN_LATER = 4429
# RFC 6455 "service restart": this replica is stopping; reconnect (any replica).
SERVICE_RESTART = 1012
FIRST_MESSAGE_TIMEOUT_S = 10.0


async def _principal(websocket: WebSocket, token: str | None, services: Services) -> Principal:
    scheme, _, credentials = websocket.headers.get("authorization", "").partition(" ")
    if token is None and scheme.lower() == "bearer" and credentials.strip():
        token = credentials.strip()
    if token is None:
        try:
            first = await asyncio.wait_for(websocket.receive_text(), FIRST_MESSAGE_TIMEOUT_S)
            token = str(json.loads(first)["token"])
        except (TimeoutError, ValueError, KeyError, TypeError) as exc:
            raise ApiError(401, "unauthorized", 'send {"token": "..."} first') from exc
    return await principal_for(token, services)


async def _watch_disconnect(websocket: WebSocket, queue: asyncio.Queue[Any]) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            await websocket.receive()
    queue.put_nowait(Signal.DISCONNECTED)


async def _pump(websocket: WebSocket, queue: asyncio.Queue[Any], until_final: bool) -> None:
    # A client that takes nothing for `stream_send_timeout_s` is dropped (the run goes on; it
    # resumes).
    with contextlib.suppress(TimeoutError):
        await _pump_until_end(websocket, queue, until_final)


async def _pump_until_end(
    websocket: WebSocket, queue: asyncio.Queue[Any], until_final: bool
) -> None:
    settings = websocket.app.state.services.settings
    heartbeat_s, send_timeout_s = settings.ws_heartbeat_s, settings.stream_send_timeout_s
    while True:
        try:
            item = await asyncio.wait_for(queue.get(), heartbeat_s)
        except TimeoutError:
            await websocket.send_text(heartbeat_message())
            continue
        if item is Signal.DISCONNECTED:
            return
        if item is Signal.LOST:
            await websocket.close(TIMEOUT, "the run did not finish by its deadline")
            return
        if item is Signal.SHUTDOWN:
            await websocket.close(SERVICE_RESTART, "gateway restarting: reconnect")
            return
        if isinstance(item, StreamedEvent):
            async with asyncio.timeout(send_timeout_s):
                await websocket.send_text(ws_message(item.payload))
            if until_final and item.is_final:
                await websocket.close(1000)
                return


@router.websocket("/ws/executions/{run_id}")
@router.websocket("/ws/{run_id}")
async def run_socket(websocket: WebSocket, run_id: str, token: str | None = None) -> None:
    services: Services = websocket.app.state.services
    await websocket.accept()
    try:
        principal = await _principal(websocket, token, services)
        owner = await services.runs.owner(run_id)
        if owner is None or owner.user_id != principal.user_id:
            raise ApiError(404, "not_found", f"execution {run_id} not found")
        principal.require_workflow(owner.workflow_id)
    except ApiError as exc:
        await websocket.close(UNAUTHORIZED if exc.status == 401 else NOT_FOUND, exc.message)
        return
    try:
        ticket = services.open_stream(principal.user_id, principal.key_id)
    except ApiError as exc:
        await websocket.close(TRY_AGAIN_LATER, exc.message)
        return
    source = AttachedRun(services.hub, owner, services.settings.deadline_grace_s)
    try:
        await source.open(services.js, None)
    except BaseException:
        ticket.release()
        raise
    deadline = source.arm_deadline()
    watcher = asyncio.create_task(_watch_disconnect(websocket, source.feed.queue))
    try:
        await _pump(websocket, source.feed.queue, until_final=True)
    finally:
        deadline.cancel()
        watcher.cancel()
        source.close()
        ticket.release()


@router.websocket("/ws")
async def user_socket(websocket: WebSocket, token: str | None = None) -> None:
    services: Services = websocket.app.state.services
    await websocket.accept()
    try:
        principal = await _principal(websocket, token, services)
        principal.require_user_token()  # a key sees one workflow; this is all of a user's runs
    except ApiError as exc:
        await websocket.close(UNAUTHORIZED if exc.status == 401 else FORBIDDEN, exc.message)
        return
    try:
        ticket = services.open_stream(principal.user_id, principal.key_id)
    except ApiError as exc:
        await websocket.close(TRY_AGAIN_LATER, exc.message)
        return
    feed = await services.hub.watch_owner(owner_token(principal.user_id))
    watcher = asyncio.create_task(_watch_disconnect(websocket, feed.queue))
    try:
        await _pump(websocket, feed.queue, until_final=False)
    finally:
        watcher.cancel()
        services.hub.unwatch_owner(feed)
        ticket.release()
