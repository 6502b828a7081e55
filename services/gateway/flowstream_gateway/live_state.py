"""A run's state read from its event log, not from history: never behind the engine.

Three lookups of the last message on a subject (`workflow_finished`, `workflow_paused`,
`workflow_resumed` of the run), made at once: a control request decides on what the run has
actually done, and a step names the exact pause it answers.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from flowstream_shared import subjects
from flowstream_shared.commands import RunOwner
from flowstream_shared.events import RunStatus


@dataclass(frozen=True)
class LiveState:
    status: RunStatus  # pending (nothing published yet), running, paused or terminal
    pause_seq: int | None = None  # the run's `seq` of the pause it is in
    paused_before: list[str] | None = None
    pause_reason: str | None = None

    @property
    def finished(self) -> bool:
        return self.status not in (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.PAUSED)


async def _last(js: Any, owner: RunOwner, event: str) -> tuple[int, dict[str, Any]] | None:
    """(stream sequence, payload) of the run's last `event`, or None."""
    subject = subjects.event_subject(owner.workflow_id, owner.run_id, event)
    try:
        msg = await js.get_last_msg(subjects.EVENTS_STREAM, subject)
    except Exception:  # nats-py raises NotFoundError when there is none
        return None
    payload: dict[str, Any] = json.loads(msg.data)
    return int(msg.seq), payload


async def live_state(js: Any, owner: RunOwner) -> LiveState:
    finished, paused, resumed, started = await asyncio.gather(
        _last(js, owner, "workflow_finished"),
        _last(js, owner, "workflow_paused"),
        _last(js, owner, "workflow_resumed"),
        _last(js, owner, "workflow_started"),
    )
    if finished is not None:
        return LiveState(RunStatus(finished[1]["data"]["status"]))
    if paused is not None and (resumed is None or paused[0] > resumed[0]):
        data = paused[1]["data"]
        return LiveState(
            RunStatus.PAUSED,
            pause_seq=int(paused[1]["seq"]),
            paused_before=data.get("node_ids"),
            pause_reason=data.get("reason"),
        )
    return LiveState(RunStatus.RUNNING if started is not None else RunStatus.PENDING)
