"""A run's events as the API streams them (docs/api.md, "Events")."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

FINAL_EVENTS = frozenset({"workflow_finished", "error"})


@dataclass(frozen=True)
class RunEvent:
    event: str
    workflow_run_id: str
    task_id: str
    data: dict[str, Any] = field(default_factory=dict)
    seq: int | None = None
    # The SSE `id:` of the frame that carried the event: an opaque cursor for `Last-Event-ID`.
    cursor: str | None = None

    @property
    def is_final(self) -> bool:
        return self.event in FINAL_EVENTS

    @classmethod
    def parse(cls, text: str, cursor: str | None) -> RunEvent:
        body = json.loads(text)
        if not isinstance(body, dict) or not isinstance(body.get("event"), str):
            raise ValueError(f"not an event: {text[:80]}")
        data = body.get("data")
        seq = body.get("seq")
        return cls(
            event=body["event"],
            workflow_run_id=str(body.get("workflow_run_id", "")),
            task_id=str(body.get("task_id", "")),
            data=data if isinstance(data, dict) else {},
            seq=seq if isinstance(seq, int) else None,
            cursor=cursor,
        )
