"""Following a run that is already under way, from its first event or after a cursor, on any
gateway replica: the stored events are read from the event log (direct get, no consumer per
attach), then the run's live events follow, each exactly once and in `seq` order.
"""

from __future__ import annotations

import asyncio
import time

from flowstream_shared import subjects
from flowstream_shared.commands import RunOwner
from flowstream_shared.event_log import read_messages
from flowstream_shared.subjects import RunAddress
from nats.js import JetStreamContext

from flowstream_gateway.errors import ApiError, invalid_param
from flowstream_gateway.hub import EventHub, RunFeed, Signal, StreamedEvent, stored_event

# Unknown deadlines (runs queued before the run index kept them): give up after a day.
_FALLBACK_DEADLINE_S = 24 * 3600.0


class AttachedRun:
    def __init__(self, hub: EventHub, owner: RunOwner, grace_s: float) -> None:
        self._hub = hub
        self._owner = owner
        self._run = RunAddress.of(owner.user_id, owner.workflow_id, owner.run_id)
        self._give_up_at = (owner.deadline or owner.created_at + _FALLBACK_DEADLINE_S) + grace_s
        self._feed: RunFeed | None = None

    @property
    def feed(self) -> RunFeed:
        assert self._feed is not None, "open() first"
        return self._feed

    @property
    def run_id(self) -> str:
        return self._owner.run_id

    @property
    def task_id(self) -> str:
        return self._owner.task_id

    async def stored(self) -> list[StreamedEvent]:
        """The run's events stored so far, in `seq` order."""
        events = [
            stored_event(message)
            async for message in read_messages(
                self._hub.nc,
                subjects.EVENTS_STREAM,
                self._run.events_filter,
                since=self._owner.created_at - 1,
            )
        ]
        return sorted(events, key=lambda e: e.seq)

    async def open(self, js: JetStreamContext, after_cursor: int | None) -> None:
        """Follow from the first event, or from the one after `after_cursor` (Last-Event-ID)."""
        feed = await self._hub.watch(self._run, since=self._owner.created_at - 1)
        feed.hold()  # live events wait while the stored ones are read: none is missed
        try:
            stored = await self.stored()
            after_seq = await self._start_after(js, stored, after_cursor)
        except BaseException:
            self._hub.unwatch(feed)
            raise
        for event in stored:
            feed.offer(event)
        feed.begin(after_seq)
        self._feed = feed

    async def _start_after(
        self, js: JetStreamContext, stored: list[StreamedEvent], after_cursor: int | None
    ) -> int:
        if stored and stored[0].seq != 1:
            raise ApiError(
                410, "gone", f"the first events of run {self.run_id} have aged out of the log"
            )
        if after_cursor is None or after_cursor == 0:
            return 0
        for event in stored:
            if event.cursor == after_cursor:
                return event.seq
        first = (await js.stream_info(subjects.EVENTS_STREAM)).state.first_seq
        if after_cursor < first:
            raise ApiError(
                410,
                "gone",
                f"events after cursor {after_cursor} have aged out of the event log (it starts "
                f"at {first}); attach without Last-Event-ID",
            )
        raise invalid_param(f"Last-Event-ID {after_cursor} is not an event of run {self.run_id}")

    def arm_deadline(self) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(
            max(self._give_up_at - time.time(), 0.0), self.feed.queue.put_nowait, Signal.LOST
        )

    def close(self) -> None:
        if self._feed is not None:
            self._hub.unwatch(self._feed)
            self._feed = None
