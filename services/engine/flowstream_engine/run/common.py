"""Values the parts of the executor pass each other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flowstream_shared.events import NodeStatus, RunStatus

from flowstream_engine.nodes.base import NodeResult

STOPPED_BY_USER = "Stopped by user."
INTERRUPTED = "interrupted: the engine running this node stopped; the node runs again"


@dataclass(frozen=True)
class Halt:
    """Why a whole run ends early."""

    status: RunStatus
    error: str
    # The deadline interrupts every node; a stop or a failure only the interruptible ones.
    interrupt_all: bool
    node_status: NodeStatus

    @property
    def stop(self) -> StopReason:
        return StopReason(self.node_status, self.error, self.interrupt_all)


@dataclass(frozen=True)
class StopReason:
    """Why a scope stops starting nodes; running nodes it interrupts end with this status."""

    node_status: NodeStatus
    error: str
    interrupt_all: bool


class Interrupted(Exception):
    """A LOOP whose scope was stopped ends with the stop's status instead of its own."""

    def __init__(self, reason: StopReason) -> None:
        super().__init__(reason.error)
        self.reason = reason


@dataclass
class Outcome:
    node_id: str
    status: NodeStatus
    result: NodeResult | None
    error: str | None


@dataclass(frozen=True)
class LoopFrame:
    """One iteration of a LOOP body, as the body's nodes see it."""

    loop_id: str
    index: int
    execution_id: str

    def binding(self) -> dict[str, Any]:
        return {"index": self.index}
