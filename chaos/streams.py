"""Following one run's events as a client does: SSE (a run started by the request, or attached
to with `Last-Event-ID`) and WebSocket, over as many connections as faults make it take.

`RunFollower` is what a client knows of its run across connections: the `seq` of every event it
was delivered, the cursor to resume after, and every way the promise of a gap-free stream was
broken (an event skipped, an event delivered twice after the client said it had it).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets
from httpx_sse import aconnect_sse
from websockets.exceptions import ConnectionClosed

# RFC 6455 "service restart": a stopping gateway closes WebSockets with it.
SERVICE_RESTART = 1012


class StreamEnded(Exception):
    """The connection ended before `workflow_finished`: the client resumes."""


class SubmitRefused(Exception):
    """The gateway answered a submission with an error; `retry` says whether to try again."""

    def __init__(self, status: int, body: str, retry: bool) -> None:
        super().__init__(f"HTTP {status}: {body[:200]}")
        self.status = status
        self.retry = retry


@dataclass
class RunFollower:
    run_id: str | None = None
    cursor: int | None = None  # the last `id:` seen (a stream sequence), for Last-Event-ID
    last_seq: int = 0
    seqs: list[int] = field(default_factory=list)
    gaps: list[tuple[int, int]] = field(default_factory=list)  # (expected, got)
    duplicates: list[int] = field(default_factory=list)
    connections: int = 0
    resume_frames: int = 0
    restart_closes: int = 0
    finished: dict[str, Any] | None = None
    finished_seen_at: float | None = None
    created_at: float | None = None
    run_ids: set[str] = field(default_factory=set)  # every run id an event named

    def deliver(self, payload: dict[str, Any], cursor: int | None, replayed: bool) -> None:
        """One event as delivered. `replayed`: this connection starts from the run's first
        event (a repeated submission, a WebSocket), so what the client has is sent again."""
        seq = int(payload.get("seq", 0))
        run_id = str(payload.get("workflow_run_id"))
        self.run_ids.add(run_id)
        self.run_id = self.run_id or run_id
        if seq <= self.last_seq:
            if not replayed:
                self.duplicates.append(seq)
            return
        if seq != self.last_seq + 1:
            self.gaps.append((self.last_seq + 1, seq))
        self.last_seq = seq
        self.seqs.append(seq)
        if cursor is not None:
            self.cursor = cursor
        event = payload.get("event")
        if event == "workflow_started":
            self.created_at = float(payload.get("data", {}).get("created_at") or 0) or None
        if event == "workflow_finished" and self.finished is None:
            self.finished = payload
            self.finished_seen_at = time.time()


async def follow_sse(
    client: httpx.AsyncClient,
    follower: RunFollower,
    method: str,
    url: str,
    *,
    json_body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    replayed: bool,
) -> None:
    """Read one SSE connection to its end; return once `workflow_finished` is delivered."""
    follower.connections += 1
    async with aconnect_sse(client, method, url, json=json_body, headers=headers) as source:
        response = source.response
        if response.status_code != 200:
            body = (await response.aread()).decode(errors="replace")
            retry = response.status_code >= 500 or response.status_code == 429
            raise SubmitRefused(response.status_code, body, retry)
        async for frame in source.aiter_sse():
            if frame.event == "resume":
                follower.resume_frames += 1
                raise StreamEnded("the gateway asked to resume elsewhere")
            if not frame.data or frame.data == "[DONE]":
                continue
            payload = json.loads(frame.data)
            if payload.get("event") == "error":
                raise StreamEnded(f"error frame: {payload.get('data')}")
            cursor = int(frame.id) if frame.id else None
            follower.deliver(payload, cursor, replayed)
            if follower.finished is not None:
                return
    raise StreamEnded("the stream ended without workflow_finished")


async def follow_ws(ws_url: str, token: str, follower: RunFollower) -> None:
    """Read one WebSocket to its end: it replays the run from its first event."""
    assert follower.run_id is not None
    follower.connections += 1
    url = f"{ws_url}/ws/executions/{follower.run_id}?token={token}"
    try:
        async with websockets.connect(url, open_timeout=10, close_timeout=2) as socket:
            async for message in socket:
                follower.deliver(json.loads(message), None, replayed=True)
                if follower.finished is not None:
                    return
    except ConnectionClosed as exc:
        if exc.rcvd is not None and exc.rcvd.code == SERVICE_RESTART:
            follower.restart_closes += 1
        raise StreamEnded(f"websocket closed: {exc}") from exc
    raise StreamEnded("the websocket closed without workflow_finished")
