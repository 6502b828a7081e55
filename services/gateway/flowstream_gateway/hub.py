"""Fans the event log out to the runs this replica is streaming.

One ordered consumer per gateway process reads `flowstream.events.>` from "new" and hands each
event to the feeds watching its run: no per-run consumer to create, no per-run round trip.
A feed is registered before its run command is published, so it cannot miss an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from dataclasses import dataclass
from typing import Any

from flowstream_shared import subjects
from nats.js.api import DeliverPolicy

FINISHED = b"workflow_finished"


@dataclass(frozen=True, slots=True)
class StreamedEvent:
    cursor: int  # the JetStream sequence: the SSE `id:` and `Last-Event-ID`
    event: str
    payload: bytes

    @property
    def is_final(self) -> bool:
        return self.event == "workflow_finished"


class Signal(enum.Enum):
    """Things a stream wakes up for besides events: all go through the run's one queue."""

    KEEPALIVE = "keepalive"
    DISCONNECTED = "disconnected"
    LOST = "lost"  # the deadline plus grace passed without a `workflow_finished`


class RunFeed:
    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.queue: asyncio.Queue[StreamedEvent | Signal] = asyncio.Queue()


class EventHub:
    def __init__(self, js: Any) -> None:
        self._js = js
        self._feeds: dict[str, list[RunFeed]] = {}
        self._sub: Any = None

    @property
    def watched_runs(self) -> int:
        return len(self._feeds)

    async def start(self) -> None:
        self._sub = await self._js.subscribe(
            subjects.ALL_EVENTS,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.NEW,
            cb=self._on_message,
            pending_msgs_limit=-1,
            pending_bytes_limit=-1,
        )

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()

    def watch(self, run_id: str) -> RunFeed:
        feed = RunFeed(run_id)
        self._feeds.setdefault(run_id, []).append(feed)
        return feed

    def unwatch(self, feed: RunFeed) -> None:
        feeds = self._feeds.get(feed.run_id)
        if feeds is None:
            return
        with contextlib.suppress(ValueError):
            feeds.remove(feed)
        if not feeds:
            del self._feeds[feed.run_id]

    async def _on_message(self, msg: Any) -> None:
        # flowstream.events.<workflow_id>.<run_id>.<event>
        _, _, _, run_id, event = msg.subject.split(".", 4)
        feeds = self._feeds.get(run_id)
        if not feeds:
            return
        streamed = StreamedEvent(msg.metadata.sequence.stream, event, msg.data)
        for feed in feeds:
            feed.queue.put_nowait(streamed)
