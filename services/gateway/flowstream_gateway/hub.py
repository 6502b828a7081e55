"""The events of the runs this replica streams, and nothing else.

A run's feed is a core subscription on the run's own subjects (`flowstream.events.<owner>.<wf>.
<run>.*`), registered before its command is published, so it cannot miss the run's first event.
The event stream republishes each event it stores to those subjects with its stream sequence
(the SSE cursor), so a gateway receives exactly the stored events of its own runs: its cost
grows with its clients, never with the cluster's traffic, and nothing is looked up per event.

What a core subscription can miss — messages published while the connection was reconnecting,
or dropped for a slow subscriber — is read back from the event log (direct get, no consumer):
a feed delivers events in `seq` order, exactly once, holding any that arrive past a gap until
the gap is filled. An attach replays the stored events the same way, then follows live.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from flowstream_shared import subjects
from flowstream_shared.event_log import StoredMessage, read_messages
from flowstream_shared.subjects import RunAddress
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

log = logging.getLogger(__name__)

# How long an event past a gap waits for the missing one to arrive live before the gap is read
# from the event log (an event retried by its engine may be stored a little out of order).
GAP_PATIENCE_S = 0.25


@dataclass(frozen=True, slots=True)
class StreamedEvent:
    cursor: int  # the stream sequence: the SSE `id:` and `Last-Event-ID`
    seq: int  # the run's own gap-free sequence
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
    SHUTDOWN = "shutdown"  # this replica is stopping: the client resumes elsewhere
    # The client took no frame for `SEND_TIMEOUT_S`: dropped, the run goes on, the client resumes.
    SLOW = "slow"


FeedItem = StreamedEvent | Signal


def _seq_of(msg_id: str | None) -> int | None:
    if not msg_id:
        return None
    tail = msg_id.rpartition(":")[2]
    return int(tail) if tail.isdigit() else None


def _streamed(cursor: int, subject: str, msg_id: str | None, payload: bytes) -> StreamedEvent:
    seq = _seq_of(msg_id)
    if seq is None:
        raise ValueError(f"event {cursor} on {subject} carries no sequence")
    return StreamedEvent(cursor, seq, subject.rpartition(".")[2], payload)


def stored_event(message: StoredMessage) -> StreamedEvent:
    return _streamed(message.seq, message.subject, message.msg_id, message.data)


class RunFeed:
    """One run's events for one stream, in `seq` order, each exactly once."""

    def __init__(self, hub: EventHub, run: RunAddress, since: float, after_seq: int = 0) -> None:
        self.run = run
        self.queue: asyncio.Queue[FeedItem] = asyncio.Queue()
        self.last_cursor = 0
        self._hub = hub
        self._since = since  # the run was accepted then: its events are all stored later
        self._next_seq = after_seq + 1
        self._held: dict[int, StreamedEvent] = {}
        self._holding = False  # an attach holds live events until it knows where to start
        self._subscription: Subscription | None = None
        self._catch_up: asyncio.Task[None] | None = None
        self._gap_timer: asyncio.TimerHandle | None = None

    @property
    def run_id(self) -> str:
        return self.run.run_id

    def hold(self) -> None:
        """Keep what arrives until :meth:`begin` says from where to deliver."""
        self._holding = True

    def begin(self, after_seq: int) -> None:
        self._holding = False
        self._next_seq = after_seq + 1
        held = sorted(self._held.values(), key=lambda e: e.seq)
        self._held = {}
        for event in held:
            self.offer(event)

    def offer(self, event: StreamedEvent) -> None:
        if event.seq < self._next_seq or event.seq in self._held:
            return  # delivered already
        if self._holding:
            self._held[event.seq] = event
            return
        if event.seq > self._next_seq:
            self._held[event.seq] = event
            if self._gap_timer is None and self._catch_up is None:
                loop = asyncio.get_running_loop()
                self._gap_timer = loop.call_later(GAP_PATIENCE_S, self.catch_up)
            return
        self._deliver(event)
        while self._next_seq in self._held:
            self._deliver(self._held.pop(self._next_seq))
        if not self._held and self._gap_timer is not None:
            self._gap_timer.cancel()
            self._gap_timer = None

    def _deliver(self, event: StreamedEvent) -> None:
        self._next_seq = event.seq + 1
        self.last_cursor = event.cursor
        self.queue.put_nowait(event)

    def catch_up(self) -> None:
        """Read what the live subscription may have missed from the event log."""
        self._gap_timer = None
        if self._catch_up is None:
            self._catch_up = asyncio.get_running_loop().create_task(self._read_log())

    async def replay(self) -> None:
        """Deliver what is stored already (an attach), then whatever arrives live."""
        await self._read_log()

    async def _read_log(self) -> None:
        try:
            async for message in read_messages(
                self._hub.nc, subjects.EVENTS_STREAM, self.run.events_filter, since=self._since
            ):
                self.offer(stored_event(message))
        except Exception as exc:  # the next gap or reconnect tries again
            log.warning("reading run %s's events failed: %s", self.run.run_id, exc)
        finally:
            self._catch_up = None

    async def open(self) -> None:
        self._subscription = await self._hub.nc.subscribe(
            self.run.events_filter, cb=self._on_message, pending_msgs_limit=-1
        )

    async def _on_message(self, msg: Msg) -> None:
        headers = msg.headers or {}
        try:
            self.offer(
                _streamed(
                    int(headers["Nats-Sequence"]),
                    msg.subject,
                    headers.get("Nats-Msg-Id"),
                    msg.data,
                )
            )
        except (KeyError, ValueError) as exc:
            log.warning("ignoring a malformed event on %s: %s", msg.subject, exc)

    def close(self) -> None:
        if self._gap_timer is not None:
            self._gap_timer.cancel()
        if self._catch_up is not None:
            self._catch_up.cancel()
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            self._hub.later(subscription.unsubscribe())


class OwnerFeed:
    """Every event of every run of one owner from the moment the feed is opened (live only)."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.queue: asyncio.Queue[FeedItem] = asyncio.Queue()


class EventHub:
    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self._feeds: set[RunFeed] = set()
        self._owner_feeds: dict[str, list[OwnerFeed]] = {}
        self._owner_subs: dict[str, Subscription] = {}
        self._background: set[asyncio.Task[object]] = set()

    @property
    def watched_runs(self) -> int:
        return len(self._feeds)

    async def watch(self, run: RunAddress, since: float, after_seq: int = 0) -> RunFeed:
        """Follow a run from after `after_seq`. The subscription is registered before this
        returns: publish the run's command afterwards and no event can be missed."""
        feed = RunFeed(self, run, since, after_seq)
        await feed.open()
        self._feeds.add(feed)
        return feed

    def unwatch(self, feed: RunFeed) -> None:
        self._feeds.discard(feed)
        feed.close()

    async def watch_owner(self, owner: str) -> OwnerFeed:
        feed = OwnerFeed(owner)
        feeds = self._owner_feeds.setdefault(owner, [])
        feeds.append(feed)
        if owner not in self._owner_subs:

            async def deliver(msg: Msg) -> None:
                headers = msg.headers or {}
                try:
                    event = _streamed(
                        int(headers["Nats-Sequence"]),
                        msg.subject,
                        headers.get("Nats-Msg-Id"),
                        msg.data,
                    )
                except (KeyError, ValueError):
                    return
                for each in self._owner_feeds.get(owner, ()):
                    each.queue.put_nowait(event)

            self._owner_subs[owner] = await self.nc.subscribe(
                subjects.owner_events(owner), cb=deliver, pending_msgs_limit=-1
            )
        return feed

    def unwatch_owner(self, feed: OwnerFeed) -> None:
        feeds = self._owner_feeds.get(feed.owner, [])
        with contextlib.suppress(ValueError):
            feeds.remove(feed)
        if not feeds:
            self._owner_feeds.pop(feed.owner, None)
            subscription = self._owner_subs.pop(feed.owner, None)
            if subscription is not None:
                self.later(subscription.unsubscribe())

    def on_reconnected(self) -> None:
        """Events published while the connection was down reached no core subscription."""
        for feed in list(self._feeds):
            feed.catch_up()

    def shutting_down(self) -> None:
        """Tell every stream of this replica to end and send its client elsewhere."""
        for feed in list(self._feeds):
            feed.queue.put_nowait(Signal.SHUTDOWN)
        for feeds in self._owner_feeds.values():
            for owner_feed in feeds:
                owner_feed.queue.put_nowait(Signal.SHUTDOWN)

    def later(self, work: Coroutine[Any, Any, object]) -> None:
        """Run a coroutine in the background, holding it so it is not collected mid-flight."""
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def stop(self) -> None:
        for feed in list(self._feeds):
            self.unwatch(feed)
        for subscription in self._owner_subs.values():
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
        self._owner_subs.clear()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
