"""History reads that reflect everything a client may already have seen (ADR 0016).

Once any client has seen a run's `workflow_finished` (over SSE, WebSocket or NATS), every read
says so. Each read tells history what may have been seen, read from the event log itself (one
direct get, served by any replica):
- a read of one run: the run's latest stored event and its `seq` (from its `Nats-Msg-Id`,
  `<run>:<seq>`); history answers once the run is recorded with its events up to there;
- any other read: the event stream's latest sequence (direct get) and the run index's latest
  revision (its stream's info); history answers once it has recorded both.
History's wait is bounded. A read of a run history has not recorded within it (or while history
is away, or when it says it could not catch up) is answered from the event log: its state and
end overlaid on what history has, its timeline from the log; never `404`, never behind what a
client saw.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from flowstream_shared import subjects
from flowstream_shared.commands import RunOwner
from flowstream_shared.event_log import StoredMessage, last_message, read_messages
from flowstream_shared.history import HistoryOp, RunQuery, SeenPositions
from flowstream_shared.subjects import RunAddress
from nats.aio.client import Client
from nats.js import JetStreamContext

from flowstream_gateway.errors import ApiError
from flowstream_gateway.history_client import HistoryClient
from flowstream_gateway.live_state import state_of
from flowstream_gateway.runs import RunService

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunRead:
    """What history answered about one run (None: nothing, history has not recorded it or is
    away), the run's newest stored event, and whether history's answer may be behind it."""

    result: Any | None
    last: StoredMessage | None
    behind: bool


Q = TypeVar("Q", bound=SeenPositions)
_RUNS_INDEX_STREAM = f"KV_{subjects.RUNS_BUCKET}"


def seq_of(last: StoredMessage | None) -> int:
    """A stored event's per-run `seq` (0: the run has none yet)."""
    if last is None:
        return 0
    if last.msg_id and ":" in last.msg_id:
        return int(last.msg_id.rsplit(":", 1)[1])
    return int(json.loads(last.data)["seq"])


class ConsistentReads:
    def __init__(
        self, history: HistoryClient, nc: Client, js: JetStreamContext, runs: RunService
    ) -> None:
        self._history = history
        self._nc = nc
        self._js = js
        self._runs = runs

    async def latest(self, owner: RunOwner) -> tuple[StoredMessage | None, int | None]:
        """The run's newest stored event and its `seq`; (None, None) when the log does not
        answer (the read then waits for nothing)."""
        try:
            last = await self._runs.last_event(owner)
        except Exception as exc:
            log.warning("event log unavailable for run %s: %s", owner.run_id, exc)
            return None, None
        return last, seq_of(last)

    async def run(self, op: HistoryOp, owner: RunOwner, **paging: int) -> RunRead:
        """History's answer to a read of one run (`paging`: a timeline's `after_seq` and
        `limit`), once it reflects the run's latest stored event, with that event."""
        last, seq = await self.latest(owner)
        query = RunQuery(
            user_id=owner.user_id,
            run_id=owner.run_id,
            applied_seq=seq,
            events_seq=last.seq if last is not None else None,
            **paging,
        )
        try:
            reply = await self._history.reply(op, query)
        except ApiError as exc:
            if exc.status == 503:  # history (or its store) away: the event log answers
                log.warning("history unavailable for run %s: %s", owner.run_id, exc.message)
            elif exc.status != 404:
                raise
            return RunRead(None, last, behind=True)
        return RunRead(reply.result, last, behind=reply.behind)

    async def ask(self, op: HistoryOp, query: Q) -> Any:
        """Any other read, once history has recorded what the event stream and the run index
        hold now."""
        return await self._history.ask(op, query.model_copy(update=await self.positions()))

    async def positions(self) -> dict[str, int | None]:
        events, runs = await asyncio.gather(self._events_seq(), self._runs_seq())
        return {"events_seq": events, "runs_seq": runs}

    async def _events_seq(self) -> int | None:
        """The latest event's stream sequence (direct get: any replica answers)."""
        try:
            last = await last_message(self._nc, subjects.EVENTS_STREAM, subjects.ALL_EVENTS)
        except Exception as exc:
            log.warning("the event log is unavailable: %s", exc)
            return None
        return last.seq if last is not None else 0

    async def _runs_seq(self) -> int | None:
        """The run index's latest revision (its bucket takes no direct gets: stream info)."""
        try:
            info = await self._js.stream_info(_RUNS_INDEX_STREAM)
        except Exception as exc:
            log.warning("the run index is unavailable: %s", exc)
            return None
        return int(info.state.last_seq)

    async def log_timeline(self, owner: RunOwner) -> list[Mapping[str, Any]]:
        """The run's timeline straight from its event log (when history has not recorded it)."""
        run = RunAddress.of(owner.user_id, owner.workflow_id, owner.run_id)
        entries: list[Mapping[str, Any]] = []
        async for message in read_messages(
            self._nc, subjects.EVENTS_STREAM, run.events_filter, since=owner.created_at - 1
        ):
            payload = json.loads(message.data)
            entries.append({"seq": payload["seq"], "event": payload["event"], "payload": payload})
        return entries


def caught_up_run(run: Mapping[str, Any], last: StoredMessage | None) -> dict[str, Any]:
    """History's record with what the run's newest stored event says on top, for a record
    history could not confirm is up to date: its status, its end, its `last_seq`."""
    if last is None or seq_of(last) <= int(run.get("last_seq") or 0):
        return dict(run)
    view = {**run, "status": state_of(last).status.value, "last_seq": seq_of(last)}
    if last.subject.endswith(".workflow_finished"):
        end = json.loads(last.data)["data"]
        view |= {
            "outputs": end.get("outputs"),
            "error": end.get("error"),
            "elapsed_ms": round(float(end.get("elapsed_time") or 0) * 1000, 3),
            "total_steps": end.get("total_steps"),
            "total_tokens": end.get("total_tokens"),
            "finished_at": end.get("finished_at"),
        }
    return view


def unrecorded_run(owner: RunOwner, last: StoredMessage | None) -> dict[str, Any]:
    """A run as its index entry and its newest stored event describe it, for a run history has
    not recorded yet: pending (nothing stored), running, paused or ended."""
    run = {
        "id": owner.run_id,
        "task_id": owner.task_id,
        "workflow_id": owner.workflow_id,
        "workflow_version": None,
        "user_id": owner.user_id,
        "end_user": owner.end_user or owner.user_id,
        "execution_name": owner.execution_name,
        "inputs": None,
        "outputs": None,
        "status": state_of(last).status.value,
        "error": None,
        "elapsed_ms": None,
        "total_steps": None,
        "total_tokens": None,
        "created_at": owner.created_at,
        "started_at": None,
        "finished_at": None,
        "last_seq": 0,
        "progress": None,
    }
    return caught_up_run(run, last)
