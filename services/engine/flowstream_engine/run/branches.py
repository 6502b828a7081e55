"""The branches of the PARALLEL nodes of one scope.

A branch is the set of nodes only its start node reaches (the plan computes it); it has
finished when each of them has finished or been skipped. `max_concurrent` holds back the
branches past the limit until running ones finish. With `wait_for_all: false` the first branch
to finish wins: the others lose, their running nodes end `stopped`, the rest of them is skipped,
and whatever joins the branches runs at once. Each started branch emits `parallel_branch_started`
and exactly one `parallel_branch_finished` (`succeeded`, `failed` or `stopped`).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flowstream_shared.events import (
    EventName,
    NodeStatus,
    ParallelBranchFinishedData,
    ParallelBranchStartedData,
)
from flowstream_shared.workflow import BranchKey, ParallelConfig

from flowstream_engine.plan import Edge, PlannedNode
from flowstream_engine.run.common import StopReason

if TYPE_CHECKING:
    from flowstream_engine.run.scheduler import Scheduler


@dataclass
class _Branch:
    key: BranchKey
    edge: Edge
    remaining: set[str]
    state: str = "queued"  # → running → done
    ended: tuple[NodeStatus, str] | None = None  # the first node of it that failed or stopped
    lost: bool = False


class BranchTracker:
    def __init__(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler
        self._plan = scheduler.run.plan
        self._branches: dict[BranchKey, _Branch] = {}
        self._queues: dict[str, deque[BranchKey]] = {}
        self._active: dict[str, int] = {}
        self._decided: set[str] = set()
        self._lost_nodes: set[str] = set()

    def is_lost(self, node_id: str) -> bool:
        return node_id in self._lost_nodes

    def fork(self, parallel: PlannedNode, edges: list[Edge]) -> None:
        """A PARALLEL finished: queue its branches and start as many as it allows."""
        pid = parallel.node.id
        queue = self._queues[pid] = deque()
        self._active[pid] = 0
        for edge in edges:
            key = (pid, edge.target)
            members = self._plan.branch_nodes.get(key, frozenset({edge.target}))
            self._branches[key] = _Branch(key, edge, set(members))
            queue.append(key)
        self._release(pid)

    def _release(self, pid: str) -> None:
        config = self._plan.nodes[pid].config
        limit = config.max_concurrent if isinstance(config, ParallelConfig) else None
        queue = self._queues[pid]
        while queue and (limit is None or self._active[pid] < limit) and pid not in self._decided:
            branch = self._branches[queue.popleft()]
            branch.state = "running"
            self._active[pid] += 1
            self._emit_started(branch)
            self._scheduler.release(branch.edge, True)

    def record_end(self, node_id: str, status: NodeStatus, error: str) -> None:
        """A node of a branch failed or was stopped: so did the branch."""
        for key in self._plan.nodes[node_id].branch_keys:
            branch = self._branches.get(key)
            if branch is not None and branch.ended is None:
                branch.ended = (status, error)

    def settled(self, node_id: str) -> None:
        """`node_id` finished or was skipped."""
        for key in self._plan.nodes[node_id].branch_keys:
            branch = self._branches.get(key)
            if branch is None or branch.state != "running":
                continue
            branch.remaining.discard(node_id)
            if not branch.remaining:
                self._finish(branch)

    def _finish(self, branch: _Branch) -> None:
        pid = branch.key[0]
        branch.state = "done"
        self._active[pid] -= 1
        if branch.lost:
            status = NodeStatus.STOPPED
            error: str | None = f"another branch of PARALLEL `{pid}` finished first"
        elif branch.ended is not None:
            status, error = branch.ended
        else:
            status, error = NodeStatus.SUCCEEDED, None
        self._emit_finished(branch, status, error)
        config = self._plan.nodes[pid].config
        racing = isinstance(config, ParallelConfig) and not config.wait_for_all
        undecided = pid not in self._decided and self._scheduler.stop_reason is None
        if racing and not branch.lost and undecided:
            self._decided.add(pid)
            self._lose_all_but(pid, branch)
        self._release(pid)

    def _lose_all_but(self, pid: str, winner: _Branch) -> None:
        reason = StopReason(
            NodeStatus.STOPPED, f"another branch of PARALLEL `{pid}` finished first", True
        )
        queue = self._queues[pid]
        for key, branch in list(self._branches.items()):
            if key[0] != pid or branch is winner or branch.state == "done":
                continue
            branch.lost = True
            members = self._plan.branch_nodes.get(key, frozenset())
            self._lost_nodes |= members
            if branch.state == "queued":
                queue.remove(key)
                branch.state = "done"  # never started: no events
                self._scheduler.release(branch.edge, False)
            else:
                self._scheduler.stop_nodes(members, reason)

    def close(self) -> None:
        """The scope is done: end the branches a stop left unfinished."""
        reason = self._scheduler.stop_reason
        for branch in self._branches.values():
            if branch.state != "running":
                continue
            branch.state = "done"
            if branch.ended is not None:
                status, error = branch.ended
            elif reason is not None:
                failed = reason.node_status == NodeStatus.FAILED
                status = NodeStatus.FAILED if failed else NodeStatus.STOPPED
                error = reason.error
            else:
                status, error = NodeStatus.STOPPED, "the branch did not finish"
            self._emit_finished(branch, status, error)

    # Events. A resumed run does not announce again what its log already holds.

    def _fields(self, branch: _Branch) -> dict[str, Any]:
        pid, start = branch.key
        parent = self._plan.nodes[pid].branch
        frame = self._scheduler.frame
        return {
            "parallel_id": pid,
            "parallel_start_node_id": start,
            "parent_parallel_id": parent[0] if parent else None,
            "parent_parallel_start_node_id": parent[1] if parent else None,
            "loop_id": frame.loop_id if frame else None,
            "created_at": int(time.time()),
        }

    def _emit_started(self, branch: _Branch) -> None:
        run = self._scheduler.run
        if self._scheduler.top and branch.key in run.state.branches_started:
            return
        run.emit(
            EventName.PARALLEL_BRANCH_STARTED, ParallelBranchStartedData(**self._fields(branch))
        )

    def _emit_finished(self, branch: _Branch, status: NodeStatus, error: str | None) -> None:
        run = self._scheduler.run
        if self._scheduler.top and branch.key in run.state.branches_finished:
            return
        run.emit(
            EventName.PARALLEL_BRANCH_FINISHED,
            ParallelBranchFinishedData(**self._fields(branch), status=status, error=error),
        )
