"""Follows one run's events to its end, across dropped connections.

A stream that ends without `workflow_finished` (a dropped connection, or the gateway's `resume`
frame during a rolling restart) is re-opened on the run's attach URL with `Last-Event-ID` set to
the `id:` of the last whole frame received; the cursor is opaque and only ever echoed. Events are
deduplicated by `seq`, so a replay never yields one twice.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Literal

import httpx
from httpx_sse import EventSource

from flowstream_client.errors import FlowstreamError, connection_error, error_from_response
from flowstream_client.events import RunEvent

OpenStream = Callable[[], AbstractContextManager[httpx.Response]]
Reattach = Callable[[str, str | None], AbstractContextManager[httpx.Response]]


@dataclass(frozen=True)
class ResumePolicy:
    enabled: bool = True
    max_attempts: int = 8  # consecutive failed re-opens; every event received resets the count
    initial_delay_s: float = 1.0  # unless the server sent `retry:`
    max_delay_s: float = 15.0


def attach_path(run_id: str) -> str:
    return f"/api/executions/{run_id}/events"


@dataclass
class _Cursor:
    run_id: str | None
    last_event_id: str | None
    last_seq: int = 0
    retry_s: float = 1.0
    resume_path: str | None = None
    # How the last response ended: `[DONE]`, the server's resume frame, or just its end.
    ending: Literal["done", "resume", "eof"] = "eof"


def _same_origin_path(url: str | None, run_id: str) -> str:
    """The server's resume URL if it is a path on this gateway; the attach path otherwise."""
    if url and url.startswith("/") and not url.startswith("//"):
        return url
    return attach_path(run_id)


def _read(response: httpx.Response, cursor: _Cursor) -> Iterator[RunEvent]:
    """Events of one response, in order, each once; `cursor.ending` says how it ended."""
    cursor.ending = "eof"
    if not response.is_success:
        response.read()
        raise error_from_response(response)
    for frame in EventSource(response).iter_sse():
        if frame.retry is not None:
            cursor.retry_s = frame.retry / 1000
        if frame.data == "[DONE]":
            cursor.ending = "done"
            return
        if frame.event == "resume":
            hint = json.loads(frame.data)
            cursor.run_id = cursor.run_id or hint.get("workflow_run_id")
            data = hint.get("data") or {}
            cursor.resume_path = data.get("url")
            if data.get("last_event_id") is not None:
                cursor.last_event_id = str(data["last_event_id"])
            cursor.ending = "resume"
            return
        if not frame.data:
            continue
        event = RunEvent.parse(frame.data, frame.id or None)
        if frame.id:
            cursor.last_event_id = frame.id
        cursor.run_id = cursor.run_id or event.workflow_run_id or None
        if event.seq is not None:
            if event.seq <= cursor.last_seq:
                continue  # replayed: already delivered
            cursor.last_seq = event.seq
        yield event


def follow_run(
    open_first: OpenStream,
    reattach: Reattach,
    *,
    run_id: str | None = None,
    last_event_id: str | None = None,
    policy: ResumePolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[RunEvent]:
    policy = policy or ResumePolicy()
    cursor = _Cursor(run_id, last_event_id, retry_s=policy.initial_delay_s)
    opener: Callable[[], AbstractContextManager[httpx.Response]] = open_first
    attempt = 0
    while True:
        cause: Exception | None = None
        try:
            with opener() as response:
                for event in _read(response, cursor):
                    attempt = 0
                    yield event
                    if event.is_final:
                        return
            if cursor.ending == "done":
                return
        except FlowstreamError as exc:
            if not exc.retryable or cursor.run_id is None:
                raise
            cause = exc
        except (httpx.TransportError, httpx.StreamError) as exc:
            if cursor.run_id is None:
                raise connection_error(exc) from exc
            cause = exc
        # The stream ended before the run did: follow the run again from where it stopped.
        if cursor.run_id is None:
            raise FlowstreamError("stream_ended", "the stream ended before the run started", 0)
        if not policy.enabled:
            raise FlowstreamError("stream_dropped", f"the stream of run {cursor.run_id} ended", 0)
        attempt += 1
        if attempt > policy.max_attempts:
            raise FlowstreamError(
                "stream_dropped",
                f"the stream of run {cursor.run_id} could not be resumed after "
                f"{policy.max_attempts} attempts" + (f": {cause}" if cause else ""),
                0,
            )
        if cursor.ending == "resume" and attempt == 1:
            sleep(cursor.retry_s)  # the server said when to come back
        else:
            sleep(min(cursor.retry_s * 2 ** (attempt - 1), policy.max_delay_s))
        opener = functools.partial(
            reattach, _same_origin_path(cursor.resume_path, cursor.run_id), cursor.last_event_id
        )
