"""A run's state read from its event log, not from history: never behind the engine.

One direct get of the run's newest stored event decides: `workflow_finished` (ended, with its
status), `workflow_paused` (paused: nothing follows a pause until the run goes on, so a paused
run's newest event is its pause, with the `seq` a step names), anything else (running), nothing
(pending: no engine has started it yet).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from flowstream_shared import subjects
from flowstream_shared.commands import RunOwner
from flowstream_shared.event_log import StoredMessage, last_message
from flowstream_shared.events import RunStatus
from flowstream_shared.subjects import RunAddress
from nats.aio.client import Client


@dataclass(frozen=True)
class LiveState:
    status: RunStatus  # pending (nothing published yet), running, paused or terminal
    pause_seq: int | None = None  # the run's `seq` of the pause it is in
    paused_before: list[str] | None = None
    pause_reason: str | None = None

    @property
    def finished(self) -> bool:
        return self.status not in (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.PAUSED)


async def live_state(nc: Client, owner: RunOwner) -> LiveState:
    run = RunAddress.of(owner.user_id, owner.workflow_id, owner.run_id)
    return state_of(await last_message(nc, subjects.EVENTS_STREAM, run.events_filter))


def state_of(last: StoredMessage | None) -> LiveState:
    """The state a run's newest stored event says it is in."""
    if last is None:
        return LiveState(RunStatus.PENDING)
    event = last.subject.rsplit(".", 1)[-1]
    if event == "workflow_finished":
        return LiveState(RunStatus(json.loads(last.data)["data"]["status"]))
    if event == "workflow_paused":
        payload = json.loads(last.data)
        return LiveState(
            RunStatus.PAUSED,
            pause_seq=int(payload["seq"]),
            paused_before=payload["data"].get("node_ids"),
            pause_reason=payload["data"].get("reason"),
        )
    return LiveState(RunStatus.RUNNING)
