"""Fans the event log out to the runs this replica is streaming.

One ordered consumer per gateway process reads `flowstream.events.>` from "new" and hands each
event to the feeds watching its run: no per-run consumer to create, no per-run round trip.
A feed is registered before its run command is published, so it cannot miss an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from flowstream_shared import subjects
from nats.js.api import DeliverPolicy

FINISHED = b"workflow_finished"
_OWNER_CACHE_SIZE = 65_536


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


OwnerOf = Callable[[str], Awaitable[str | None]]


class UserFeed:
    """Every event of every run a user owns, from the moment the feed is opened."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self.queue: asyncio.Queue[StreamedEvent | Signal] = asyncio.Queue()


class EventHub:
    def __init__(self, js: Any, owner_of: OwnerOf | None = None) -> None:
        self._js = js
        self._feeds: dict[str, list[RunFeed]] = {}
        self._sub: Any = None
        self._owner_of = owner_of
        self._user_feeds: dict[str, list[UserFeed]] = {}
        self._owners: OrderedDict[str, str | None] = OrderedDict()
        # Events of runs whose owner is being looked up, delivered in order once it is known.
        self._awaiting_owner: dict[str, list[StreamedEvent]] = {}
        self._lookups: set[asyncio.Task[None]] = set()

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

    def watch_user(self, user_id: str) -> UserFeed:
        feed = UserFeed(user_id)
        self._user_feeds.setdefault(user_id, []).append(feed)
        return feed

    def unwatch_user(self, feed: UserFeed) -> None:
        feeds = self._user_feeds.get(feed.user_id, [])
        with contextlib.suppress(ValueError):
            feeds.remove(feed)
        if not feeds:
            self._user_feeds.pop(feed.user_id, None)

    async def _on_message(self, msg: Any) -> None:
        # flowstream.events.<workflow_id>.<run_id>.<event>
        _, _, _, run_id, event = msg.subject.split(".", 4)
        feeds = self._feeds.get(run_id)
        if not feeds and not self._user_feeds:
            return
        streamed = StreamedEvent(msg.metadata.sequence.stream, event, msg.data)
        for feed in feeds or ():
            feed.queue.put_nowait(streamed)
        if self._user_feeds:
            self._to_user_feeds(run_id, streamed)

    def _to_user_feeds(self, run_id: str, streamed: StreamedEvent) -> None:
        if run_id in self._owners:
            self._deliver_to_owner(self._owners[run_id], streamed)
            return
        waiting = self._awaiting_owner.setdefault(run_id, [])
        waiting.append(streamed)
        if len(waiting) == 1 and self._owner_of is not None:
            task = asyncio.get_running_loop().create_task(self._resolve_owner(run_id))
            self._lookups.add(task)
            task.add_done_callback(self._lookups.discard)

    async def _resolve_owner(self, run_id: str) -> None:
        assert self._owner_of is not None
        owner = await self._owner_of(run_id)
        self._owners[run_id] = owner
        if len(self._owners) > _OWNER_CACHE_SIZE:
            self._owners.popitem(last=False)
        for streamed in self._awaiting_owner.pop(run_id, []):
            self._deliver_to_owner(owner, streamed)

    def _deliver_to_owner(self, owner: str | None, streamed: StreamedEvent) -> None:
        for feed in self._user_feeds.get(owner or "", ()):
            feed.queue.put_nowait(streamed)
