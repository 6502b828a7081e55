"""Dify's re-attach (`GET /v1/workflow/{run_id}/events`) and reads of a run's own event log.

A finished run answers its `workflow_finished` alone, read straight from the event log. A run
still going is attached from its first event (the complete state, so nothing the client missed
while it was away is lost) and followed live. Unless the client asks `continue_on_pause`, the
stream ends at a `workflow_paused` that is the run's latest event, as Dify's does; a pause the run
has already resumed from is replayed and passed.
"""

from __future__ import annotations

import asyncio

from flowstream_shared import subjects
from flowstream_shared.commands import RunOwner
from flowstream_shared.event_log import last_message
from flowstream_shared.subjects import RunAddress
from nats.aio.client import Client
from nats.js import JetStreamContext

from flowstream_gateway.attach import AttachedRun
from flowstream_gateway.hub import EventHub, FeedItem, StreamedEvent

PAUSED = "workflow_paused"


class _StreamEnd(StreamedEvent):
    """An event after which the stream ends, as it does after `workflow_finished`."""

    __slots__ = ()

    @property
    def is_final(self) -> bool:
        return True


def _ending(event: StreamedEvent) -> StreamedEvent:
    return _StreamEnd(event.cursor, event.seq, event.event, event.payload)


class _EndsAtPause(asyncio.Queue[FeedItem]):
    """A run feed's queue in which a `workflow_paused` delivered live ends the stream: when it
    arrives it is the run's latest event."""

    def put_nowait(self, item: FeedItem) -> None:
        if isinstance(item, StreamedEvent) and item.event == PAUSED:
            item = _ending(item)
        super().put_nowait(item)

    def replay(self, items: list[FeedItem]) -> None:
        """What the attach read from the log: only a pause that is its last event ends."""
        last = max((i for i, it in enumerate(items) if isinstance(it, StreamedEvent)), default=-1)
        for i, item in enumerate(items):
            if i == last and isinstance(item, StreamedEvent) and item.event == PAUSED:
                item = _ending(item)
            super().put_nowait(item)


class DifyAttachedRun(AttachedRun):
    def __init__(
        self, hub: EventHub, owner: RunOwner, grace_s: float, continue_on_pause: bool
    ) -> None:
        super().__init__(hub, owner, grace_s)
        self._continue_on_pause = continue_on_pause

    async def open(self, js: JetStreamContext, after_cursor: int | None) -> None:
        await super().open(js, after_cursor)
        if self._continue_on_pause:
            return
        # No await from here on: nothing is delivered between the swap's two halves.
        feed = self.feed
        replayed: list[FeedItem] = []
        while not feed.queue.empty():
            replayed.append(feed.queue.get_nowait())
        queue = _EndsAtPause()
        queue.replay(replayed)
        feed.queue = queue


async def last_stored(nc: Client, owner: RunOwner, event: str) -> bytes | None:
    """The run's last `event` as the event log holds it (one direct get), or None: not (yet)
    emitted, aged out, or the log not answering."""
    run = RunAddress.of(owner.user_id, owner.workflow_id, owner.run_id)
    try:
        message = await last_message(nc, subjects.EVENTS_STREAM, run.event_subject(event))
    except Exception:  # unavailable or timed out: the caller falls back to history
        return None
    return message.data if message is not None else None
