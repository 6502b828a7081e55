"""Where a run is: its progress, the nodes running now, its elapsed time. Pure functions over
what history recorded (a run record and its node records, as JSON)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flowstream_shared.events import RunStatus

_DONE = (RunStatus.SUCCEEDED.value, RunStatus.PARTIAL_SUCCEEDED.value)
_ACTIVE = (RunStatus.PENDING.value, RunStatus.RUNNING.value, RunStatus.PAUSED.value)


def elapsed_time(run: Mapping[str, Any], now: float) -> float:
    """Seconds: the run's duration once it ended, the time since it started while it runs."""
    if run.get("status") not in _ACTIVE and run.get("elapsed_ms") is not None:
        return round(float(run["elapsed_ms"]) / 1000, 6)
    began = run.get("started_at") or run.get("created_at")
    return round(max(0.0, now - float(began)), 6) if began else 0.0


def progress(run: Mapping[str, Any]) -> float:
    """Percent of the top-level steps done (`workflow_progress`); 100 once it succeeded."""
    if run.get("status") in _DONE:
        return 100.0
    value = run.get("progress")
    return float(value) if value is not None else 0.0


def running_nodes(nodes: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The nodes running now, in the order they started."""
    found = [n for n in nodes if n.get("status") == "running"]
    found.sort(key=lambda n: (n.get("created_at") or 0.0, n.get("index") or 0))
    return [
        {
            "node_id": n["node_id"],
            "title": n.get("title") or n["node_id"],
            "started_at": n.get("created_at"),
        }
        for n in found
    ]


def status_fields(
    run: Mapping[str, Any], running: Sequence[Mapping[str, Any]], now: float
) -> dict[str, Any]:
    """`progress`, `current_nodes`, `current_node` (the one that started last), `current_step`
    (the titles of all of them) and `elapsed_time`."""
    titles = [str(n["title"]) for n in running]
    return {
        "progress": progress(run),
        "current_nodes": list(running),
        "current_node": titles[-1] if titles else None,
        "current_step": ", ".join(titles) if titles else None,
        "elapsed_time": elapsed_time(run, now),
    }
