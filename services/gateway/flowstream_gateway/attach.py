"""Attaching to a run from its first event or from a cursor, on any gateway replica.

A per-request ordered consumer filtered on the run's subjects replays what is stored and then
follows live. It starts at the run's creation time (not at the stream's start, so no scan of
other runs' history) or right after the client's `Last-Event-ID`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from flowstream_shared import subjects
from flowstream_shared.commands import RunOwner
from nats.js.api import ConsumerConfig, DeliverPolicy

from flowstream_gateway.errors import ApiError
from flowstream_gateway.hub import RunFeed, Signal, StreamedEvent

# Unknown deadlines (runs queued before the run index kept them): give up after a day.
_FALLBACK_DEADLINE_S = 24 * 3600.0


class AttachedRun:
    def __init__(self, owner: RunOwner, grace_s: float) -> None:
        self._owner = owner
        self._feed = RunFeed(owner.run_id)
        self._give_up_at = (owner.deadline or owner.created_at + _FALLBACK_DEADLINE_S) + grace_s
        self._subscription: Any = None

    @property
    def feed(self) -> RunFeed:
        return self._feed

    @property
    def run_id(self) -> str:
        return self._owner.run_id

    @property
    def task_id(self) -> str:
        return self._owner.task_id

    async def open(self, js: Any, after_cursor: int | None) -> None:
        if after_cursor is not None:
            info = await js.stream_info(subjects.EVENTS_STREAM)
            if after_cursor + 1 < info.state.first_seq:
                raise ApiError(
                    410,
                    "gone",
                    f"events after cursor {after_cursor} have aged out of the event log "
                    f"(it starts at {info.state.first_seq}); attach without Last-Event-ID",
                )
            config = ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after_cursor + 1
            )
        else:
            # A second early: the run's events are stored after it was created.
            start = datetime.fromtimestamp(self._owner.created_at, UTC) - timedelta(seconds=1)
            config = ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_TIME,
                opt_start_time=start,
            )
        self._subscription = await js.subscribe(
            subjects.run_events_filter(self._owner.workflow_id, self._owner.run_id),
            ordered_consumer=True,
            config=config,
            cb=self._on_message,
        )

    async def _on_message(self, msg: Any) -> None:
        event = msg.subject.rsplit(".", 1)[-1]
        self._feed.queue.put_nowait(StreamedEvent(msg.metadata.sequence.stream, event, msg.data))

    def arm_deadline(self) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(
            max(self._give_up_at - time.time(), 0.0), self._feed.queue.put_nowait, Signal.LOST
        )

    def close(self) -> None:
        if self._subscription is not None:
            subscription, self._subscription = self._subscription, None
            task = asyncio.get_running_loop().create_task(_unsubscribe(subscription))
            _closing.add(task)
            task.add_done_callback(_closing.discard)


_closing: set[asyncio.Task[None]] = set()


async def _unsubscribe(subscription: Any) -> None:
    with contextlib.suppress(Exception):
        await subscription.unsubscribe()
