"""Dify's re-attach (`GET /v1/workflow/{run_id}/events`) and reads of a run's own event log.

A finished run answers its `workflow_finished` alone, read straight from the event log. A run
still going is attached from its first event (the complete state, so nothing the client missed
while it was away is lost) and followed live. Unless the client asks `continue_on_pause`, the
stream ends at a `workflow_paused` that is the run's latest event, as Dify's does; a pause the run
has already resumed from is replayed and passed.
"""

from __future__ import annotations

from typing import Any

from flowstream_shared import subjects
from flowstream_shared.commands import RunOwner

from flowstream_gateway.attach import AttachedRun
from flowstream_gateway.hub import StreamedEvent


class _StreamEnd(StreamedEvent):
    """An event after which the stream ends, as it does after `workflow_finished`."""

    __slots__ = ()

    @property
    def is_final(self) -> bool:
        return True


class DifyAttachedRun(AttachedRun):
    def __init__(self, owner: RunOwner, grace_s: float, continue_on_pause: bool) -> None:
        super().__init__(owner, grace_s)
        self._continue_on_pause = continue_on_pause

    async def _on_message(self, msg: Any) -> None:
        if (
            not self._continue_on_pause
            and subjects.parse_event_subject(msg.subject)[2] == "workflow_paused"
            and msg.metadata.num_pending == 0  # nothing after it: the run is paused now
        ):
            self.feed.queue.put_nowait(
                _StreamEnd(msg.metadata.sequence.stream, "workflow_paused", msg.data)
            )
            return
        await super()._on_message(msg)


async def stored_event(js: Any, owner: RunOwner, event: str) -> bytes | None:
    """The run's last `event` as the event log holds it (one direct read), or None: not (yet)
    emitted, aged out, or the log not answering."""
    subject = subjects.event_subject(owner.workflow_id, owner.run_id, event)
    try:
        msg = await js.get_last_msg(subjects.EVENTS_STREAM, subject)
    except Exception:  # nats-py raises NotFoundError when there is none
        return None
    data: bytes = msg.data
    return data
