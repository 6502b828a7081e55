"""Runs as the execution documents that preceded flowstream show them: pure functions.

Those documents name a run's states `pending`, `running`, `paused`, `completed`, `failed` and
`cancelled`, give every WebSocket message a `type`, `execution_id`, `status` and `timestamp`,
and every history entry a `timestamp`, `event`, `status` and `message`. flowstream's own fields
stay as they are; these views add the documents' fields next to them. Timestamps here are
ISO 8601 in UTC (`2026-11-02T10:15:30Z`), as those documents write them; flowstream's own fields
keep Unix seconds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flowstream_shared.events import RunStatus

# flowstream's run and node statuses → the documents' names. Filters accept both.
SEED_STATUS = {
    RunStatus.PENDING.value: "pending",
    RunStatus.RUNNING.value: "running",
    RunStatus.PAUSED.value: "paused",
    RunStatus.SUCCEEDED.value: "completed",
    RunStatus.PARTIAL_SUCCEEDED.value: "completed",
    RunStatus.FAILED.value: "failed",
    RunStatus.STOPPED.value: "cancelled",
    "exception": "failed",
    "retry": "failed",
}
STATUS_ALIASES = {"completed": RunStatus.SUCCEEDED, "cancelled": RunStatus.STOPPED}

_FINISHED_TYPE = {"completed": "execution_completed", "failed": "execution_failed"}
_UPDATES = frozenset({"workflow_paused", "workflow_resumed", "workflow_progress"})


def run_status_filter(value: str) -> RunStatus:
    """A status to filter by, in flowstream's or the documents' vocabulary."""
    if value in STATUS_ALIASES:
        return STATUS_ALIASES[value]
    return RunStatus(value)  # ValueError for anything else


def seed_status(status: str | None) -> str | None:
    return SEED_STATUS.get(status, status) if status is not None else None


def iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _event_time(data: Mapping[str, Any], fallback: float) -> float:
    for key in ("finished_at", "created_at"):
        value = data.get(key)
        if isinstance(value, int | float):
            return float(value)
    return fallback


def _title(data: Mapping[str, Any]) -> str:
    return str(data.get("title") or data.get("node_id") or "node")


def message_type(event: str, data: Mapping[str, Any]) -> str:
    """The documents' message type of an event."""
    if event == "workflow_started":
        return "execution_started"
    if event == "workflow_finished":
        return _FINISHED_TYPE.get(seed_status(data.get("status")) or "", "execution_cancelled")
    if event in _UPDATES:
        return "execution_updated"
    if event == "node_finished":
        return (
            "node_completed"
            if data.get("status") in ("succeeded", "exception")
            else ("node_failed" if data.get("status") == "failed" else "node_cancelled")
        )
    return event  # node_started, node_retry, text_chunk, loop_*, parallel_*, error


def event_status(event: str, data: Mapping[str, Any]) -> str:
    """What the event says the run (or, for a node event, the node) now is."""
    if event in ("workflow_finished", "workflow_paused", "workflow_resumed"):
        return seed_status(data.get("status")) or "running"
    if event in ("node_finished", "node_retry", "loop_completed", "parallel_branch_finished"):
        return seed_status(data.get("status")) or "running"
    if event == "error":
        return "failed"
    return "running"


def event_message(event: str, data: Mapping[str, Any]) -> str:
    """One line a person can read."""
    title = _title(data)
    error = data.get("error")
    if event == "workflow_started":
        return "Execution started"
    if event == "workflow_finished":
        status = seed_status(data.get("status"))
        elapsed = data.get("elapsed_time")
        if status == "completed":
            return (
                f"Execution completed in {elapsed:.3f}s"
                if elapsed is not None
                else ("Execution completed")
            )
        return f"Execution {status}: {error}" if error else f"Execution {status}"
    if event == "workflow_paused":
        held = ", ".join(f"`{n}`" for n in data.get("node_ids") or [])
        why = data.get("reason") or "pause"
        return f"Execution paused ({why})" + (f" before {held}" if held else "")
    if event == "workflow_resumed":
        return "Execution resumed"
    if event == "workflow_progress":
        return (
            f"{data.get('percent')}% done "
            f"({data.get('completed_steps')} of {data.get('total_steps')} steps)"
        )
    if event == "node_started":
        return f"Node `{title}` started"
    if event == "node_finished":
        status = data.get("status")
        if status == "succeeded":
            return f"Node `{title}` completed in {data.get('elapsed_time', 0):.3f}s"
        if status == "exception":
            return f"Node `{title}` failed, handled by on_error: {error}"
        return f"Node `{title}` {seed_status(status)}: {error}"
    if event == "node_retry":
        return f"Node `{title}` failed, retry {data.get('retry_index')}: {error}"
    if event == "text_chunk":
        selector = data.get("from_variable_selector") or ["node"]
        return f"Text from `{selector[0]}`"
    if event == "error":
        return str(data.get("message", "error"))
    return event.replace("_", " ").capitalize() + (f" `{title}`" if "title" in data else "")


def seed_fields(payload: Mapping[str, Any], now: float) -> dict[str, Any]:
    """`type`, `execution_id`, `status`, `timestamp` of one event."""
    event = str(payload.get("event", ""))
    data = payload.get("data")
    data = data if isinstance(data, Mapping) else {}
    fields: dict[str, Any] = {
        "type": message_type(event, data),
        "execution_id": payload.get("workflow_run_id"),
        "status": event_status(event, data),
        "timestamp": iso(_event_time(data, now)),
    }
    if event == "workflow_progress":
        fields["progress"] = data.get("percent")
    if event.startswith("node_"):
        fields["node_id"] = data.get("node_id")
    return fields


def ws_message(payload: bytes, now: float | None = None) -> str:
    """A WebSocket message: the event's own JSON with the documents' fields in front."""
    event = json.loads(payload)
    return json.dumps({**seed_fields(event, now or time.time()), **event}, ensure_ascii=False)


def heartbeat_message(now: float | None = None) -> str:
    return json.dumps({"type": "heartbeat", "timestamp": iso(now or time.time())})


def _data(entry: Mapping[str, Any]) -> Mapping[str, Any]:
    payload = entry.get("payload") or {}
    data = payload.get("data") if isinstance(payload, Mapping) else None
    return data if isinstance(data, Mapping) else {}


def history_entry(entry: Mapping[str, Any], previous: float | None = None) -> dict[str, Any]:
    """A timeline entry (`seq`, `event`, `payload`) with `timestamp`, `status`, `message`.
    An event without a time of its own (`text_chunk`) has the time of the one before it."""
    data = _data(entry)
    event = str(entry.get("event", ""))
    own = next((data[k] for k in ("finished_at", "created_at") if k in data), None)
    at = float(own) if isinstance(own, int | float) else previous
    return {
        **entry,
        "timestamp": iso(at),
        "status": event_status(event, data),
        "message": event_message(event, data),
    }


def history_entries(timeline: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    previous: float | None = None
    for entry in timeline:
        data = _data(entry)
        own = next((data[k] for k in ("finished_at", "created_at") if k in data), None)
        previous = float(own) if isinstance(own, int | float) else previous
        entries.append(history_entry(entry, previous))
    return entries
