"""The MongoDB store's writes for one batch: plain updates that also run on FerretDB 1.x.

FerretDB answers an update addressed by `_id` alone in about a millisecond, and one with any
other condition (`{_id, status: "pending"}`, `{run_id, status: "running"}`) by scanning its
collection: tens of milliseconds, growing with the data. So each run gets one upsert per batch,
addressed by `_id`, carrying everything the batch says about it, and the conditions live
elsewhere:
- a pending run (as the run index registered it) that has events is marked `recorded`; reads
  show such a run `running` (`mongo.py`), so no conditional update turns it running;
- what a run's events this process has written (`SeenRuns`) tells how far its timeline is
  complete (`applied_seq`, for read-after-finish) and which of its attempts are still open when
  it ends, so they are stopped by `_id`; only for a run this process has not seen whole (its
  events shared with another replica, or a restart in between) is a scan needed.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from pymongo import UpdateMany, UpdateOne

from flowstream_history.projection import TERMINAL, ProjectionBatch, RunFacts

SEEN_RUNS = 65_536


@dataclass
class _Seen:
    seqs: int = 0  # bit n set: this process has written the run's event `seq` n
    open: set[str] = field(default_factory=set)  # attempts started and not ended (here)
    ended_at: float | None = None
    ended: bool = False
    ended_seq: int = 0  # the `seq` of its `workflow_finished`

    def prefix(self) -> int:
        """The highest `seq` n such that events 1..n are all written here (0: not event 1)."""
        missing = ~(self.seqs >> 1)  # bit k: event k+1 not written here
        return (missing & -missing).bit_length() - 1


class SeenRuns:
    """What this process has written of each recent run (least recently used ones forgotten)."""

    def __init__(self, size: int = SEEN_RUNS) -> None:
        self._size = size
        self._runs: OrderedDict[str, _Seen] = OrderedDict()

    def __contains__(self, run_id: str) -> bool:
        return run_id in self._runs

    def ended(self, run_id: str) -> tuple[bool, float | None]:
        seen = self._runs.get(run_id)
        return (seen.ended, seen.ended_at) if seen is not None else (False, None)

    def after(self, batch: ProjectionBatch) -> dict[str, _Seen]:
        """What this process will have written of the batch's runs once the batch is."""
        state: dict[str, _Seen] = {}
        for run in batch.runs.values():
            known = self._runs.get(run.run_id, _Seen())
            state[run.run_id] = _Seen(
                known.seqs, set(known.open), known.ended_at, known.ended, known.ended_seq
            )
        for fact in batch.timeline:
            state[fact.run_id].seqs |= 1 << fact.seq
        for node in batch.nodes:
            if node.final:
                state[node.run_id].open.discard(node.id)
            elif node.status == "running":
                state[node.run_id].open.add(node.id)
        for run in batch.runs.values():
            if run.finished is not None:  # `workflow_finished` is a run's last event
                ending = state[run.run_id]
                ending.ended, ending.ended_at = True, run.finished.get("finished_at")
                ending.ended_seq = run.max_seq
        return state

    def wrote(self, state: dict[str, _Seen]) -> None:
        for run_id, seen in state.items():
            if seen.ended:
                seen.open.clear()  # stopped with the run
            self._runs[run_id] = seen
            self._runs.move_to_end(run_id)
        while len(self._runs) > self._size:
            self._runs.popitem(last=False)


def registrations(batch: ProjectionBatch) -> list[UpdateOne]:
    """Runs the run index announced: pending unless recorded; the index's owner fields win."""
    return [
        UpdateOne(
            {"_id": entry.run_id},
            {
                "$setOnInsert": {
                    "workflow_id": entry.workflow_id,
                    "task_id": entry.task_id,
                    "status": "pending",
                    "last_seq": 0,
                },
                "$set": {
                    "user_id": entry.user_id,
                    "execution_name": entry.execution_name,
                    "created_at": entry.created_at,
                    "end_user": entry.end_user or entry.user_id,
                },
            },
            upsert=True,
        )
        for entry in batch.registrations
    ]


def run_ops(batch: ProjectionBatch, state: dict[str, _Seen]) -> list[UpdateOne]:
    ops: list[UpdateOne] = []
    for run in batch.runs.values():
        ops.extend(_run_ops(run, state[run.run_id].prefix()))
    return ops


def _run_ops(run: RunFacts, applied_seq: int) -> list[UpdateOne]:
    on_insert: dict[str, Any] = {"workflow_id": run.workflow_id, "task_id": run.task_id}
    fields: dict[str, Any] = {"recorded": True}  # a pending run with events runs (see reads)
    if run.owner is not None:
        known = {
            "user_id": run.owner.user_id,
            "execution_name": run.owner.execution_name,
            # The gateway's acceptance time, to the microsecond; events carry seconds.
            "created_at": run.owner.created_at,
        }
        fields |= {k: v for k, v in known.items() if v is not None}
    if run.started is not None:
        started = dict(run.started)
        if "created_at" in fields:
            del started["created_at"]
        else:
            # A new record takes the start's time; an existing one has the index's already.
            on_insert["created_at"] = started.pop("created_at")
        fields |= started
    if run.finished is not None:
        fields |= run.finished  # its status too: nothing changes it after this
    else:
        on_insert["status"] = "running"
    maxima: dict[str, Any] = {"last_seq": run.max_seq, "applied_seq": applied_seq}
    if run.progress is not None:
        maxima["progress"] = run.progress
    ops = [
        UpdateOne(
            {"_id": run.run_id},
            {"$setOnInsert": on_insert, "$set": fields, "$max": maxima},
            upsert=True,
        )
    ]
    if run.finished is None and run.pause_state is not None:
        ops.append(
            UpdateOne(
                {"_id": run.run_id, "status": {"$nin": list(TERMINAL)}},
                {"$set": {"status": run.pause_state[1].value}},
            )
        )
    return ops


def node_ops(batch: ProjectionBatch) -> list[UpdateOne]:
    ops: list[UpdateOne] = []
    for n in batch.nodes:
        identity = {
            "run_id": n.run_id,
            "workflow_id": n.workflow_id,
            "node_id": n.node_id,
            "node_type": n.node_type,
            "title": n.title,
            "index": n.index,
            "attempt": n.attempt,
            "created_at": n.created_at,
        }
        if n.final:
            results = {
                "status": n.status,
                "final": True,
                "outputs": n.outputs,
                "error": n.error,
                "elapsed_ms": n.elapsed_ms,
                "finished_at": n.finished_at,
            }
            if n.inputs is not None:
                results["inputs"] = n.inputs
            if n.metrics is not None:
                results["metrics"] = n.metrics
            update = {"$set": results, "$setOnInsert": identity}
        else:
            update = {
                "$setOnInsert": {**identity, "status": n.status, "final": False, "inputs": n.inputs}
            }
        ops.append(UpdateOne({"_id": n.id}, update, upsert=True))
    return ops


def runs_to_ask_about(batch: ProjectionBatch, seen: SeenRuns) -> list[str]:
    """Runs that may have ended before this batch starts an attempt of theirs (a late
    delivery), which this process cannot tell: it has not written them before, and the batch
    does not hold their start."""
    return sorted(
        {
            n.run_id
            for n in batch.nodes
            if not n.final
            and n.run_id not in seen
            and batch.runs[n.run_id].started is None
            and batch.runs[n.run_id].finished is None
        }
    )


def stop_open_attempts(
    batch: ProjectionBatch,
    state: dict[str, _Seen],
    seen: SeenRuns,
    ended_elsewhere: dict[str, float | None],
) -> list[UpdateOne | UpdateMany]:
    """Attempts still open in runs that have ended end `stopped` with them: by `_id` when this
    process has written every event of the run up to its end, else by a condition."""
    ops: list[UpdateOne | UpdateMany] = []
    ending: dict[str, float | None] = dict(ended_elsewhere)
    for run in batch.runs.values():
        was_ended, ended_at = seen.ended(run.run_id)
        if run.finished is not None or (was_ended and state[run.run_id].open):
            ending[run.run_id] = state[run.run_id].ended_at or ended_at
    for run_id, finished_at in ending.items():
        known = state.get(run_id)
        stop = {"$set": {"status": "stopped", "finished_at": finished_at}}
        if known is not None and known.ended and known.prefix() >= known.ended_seq:
            # Still open as far as this process knows; the record may say otherwise (its end
            # delivered first): only a running one is stopped.
            ops.extend(
                UpdateOne({"_id": attempt, "status": "running"}, stop)
                for attempt in sorted(known.open)
            )
        else:
            ops.append(UpdateMany({"run_id": run_id, "status": "running"}, stop))
    return ops
