"""Runs as the execution documents show them: WebSocket messages, history entries, statuses,
and where a run is (progress, running nodes, elapsed time). Pure functions, real events."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flowstream_gateway.execution_status import elapsed_time, progress, running_nodes, status_fields
from flowstream_gateway.seed_views import (
    heartbeat_message,
    history_entries,
    history_entry,
    iso,
    run_status_filter,
    ws_message,
)
from flowstream_shared.events import RunStatus
from flowstream_shared.workflow import WorkflowDefinition

from tests.unit.builders import GREET
from tests.unit.runs import run_of

NOW = 1_800_000_000.0


async def greet_events(name: str = "Ada") -> list[dict[str, Any]]:
    run = run_of(WorkflowDefinition.model_validate(GREET), {"name": name})
    await run.execute()
    return [json.loads(event.model_dump_json()) for event in run.log.events]


async def test_every_message_carries_type_execution_id_status_and_timestamp() -> None:
    events = await greet_events()
    messages = [json.loads(ws_message(json.dumps(e).encode(), NOW)) for e in events]

    for message, event in zip(messages, events, strict=True):
        assert message["execution_id"] == event["workflow_run_id"]
        assert message["timestamp"].endswith("Z")
        assert {k: message[k] for k in event} == event  # the event itself, unchanged
    kinds = [(m["type"], m["status"]) for m in messages if m["type"] != "execution_updated"]
    assert kinds[0] == ("execution_started", "running")
    assert ("node_started", "running") in kinds and ("node_completed", "completed") in kinds
    assert kinds[-1] == ("execution_completed", "completed")
    progress_message = next(m for m in messages if m["event"] == "workflow_progress")
    assert progress_message["type"] == "execution_updated" and progress_message["progress"] > 0


def _finished(status: str, error: str | None = None) -> bytes:
    return json.dumps(
        {
            "event": "workflow_finished",
            "workflow_run_id": "r",
            "task_id": "t",
            "seq": 9,
            "data": {"status": status, "error": error, "finished_at": NOW, "elapsed_time": 1.5},
        }
    ).encode()


@pytest.mark.parametrize(
    ("status", "kind", "seed"),
    [
        ("succeeded", "execution_completed", "completed"),
        ("partial-succeeded", "execution_completed", "completed"),
        ("failed", "execution_failed", "failed"),
        ("stopped", "execution_cancelled", "cancelled"),
    ],
)
def test_how_a_run_ends_is_its_type(status: str, kind: str, seed: str) -> None:
    message = json.loads(ws_message(_finished(status)))
    assert (message["type"], message["status"]) == (kind, seed)
    assert message["timestamp"] == iso(NOW)


def test_pauses_and_failed_nodes() -> None:
    paused = {
        "event": "workflow_paused",
        "workflow_run_id": "r",
        "data": {"status": "paused", "created_at": NOW, "reason": "breakpoint", "node_ids": ["x"]},
    }
    message = json.loads(ws_message(json.dumps(paused).encode()))
    assert (message["type"], message["status"]) == ("execution_updated", "paused")
    failed = {
        "event": "node_finished",
        "workflow_run_id": "r",
        "data": {"status": "failed", "node_id": "n", "title": "N", "error": "boom"},
    }
    message = json.loads(ws_message(json.dumps(failed).encode(), NOW))
    assert (message["type"], message["status"], message["node_id"]) == (
        "node_failed",
        "failed",
        "n",
    )
    assert history_entry({"seq": 3, "event": "node_finished", "payload": failed})["message"] == (
        "Node `N` failed: boom"
    )
    assert "before `x` " not in history_entry({"seq": 1, "event": "workflow_paused",
                                                "payload": paused})["message"]  # fmt: skip


def test_a_heartbeat() -> None:
    assert json.loads(heartbeat_message(NOW)) == {"type": "heartbeat", "timestamp": iso(NOW)}


async def test_history_entries_gain_timestamp_status_and_message() -> None:
    events = await greet_events("Bo")
    entries = history_entries(
        [{"seq": e["seq"], "event": e["event"], "payload": e} for e in events]
    )

    assert all(
        {"seq", "event", "payload", "timestamp", "status", "message"} <= set(e) for e in entries
    )
    assert entries[0]["message"] == "Execution started" and entries[0]["status"] == "running"
    started = next(e for e in entries if e["event"] == "node_started")
    assert started["message"] == "Node `Start` started"
    assert entries[-1]["status"] == "completed"
    assert entries[-1]["message"].startswith("Execution completed in ")
    chunk = next(e for e in entries if e["event"] == "text_chunk")
    before = entries[entries.index(chunk) - 1]
    assert chunk["timestamp"] == before["timestamp"] and chunk["message"] == "Text from `greet`"


@pytest.mark.parametrize(
    ("given", "wanted"),
    [
        ("completed", RunStatus.SUCCEEDED),
        ("cancelled", RunStatus.STOPPED),
        ("succeeded", RunStatus.SUCCEEDED),
        ("paused", RunStatus.PAUSED),
    ],
)
def test_status_filters_accept_both_vocabularies(given: str, wanted: RunStatus) -> None:
    assert run_status_filter(given) == wanted


def test_an_unknown_status_filter_is_refused() -> None:
    with pytest.raises(ValueError, match="done"):
        run_status_filter("done")


def test_where_a_running_run_is() -> None:
    run = {"status": "running", "started_at": NOW - 12.5, "progress": 40.0}
    nodes: list[dict[str, Any]] = [
        {"node_id": "a", "title": "A", "status": "succeeded", "created_at": NOW - 12},
        {"node_id": "b", "title": "Fetch", "status": "running", "created_at": NOW - 5},
        {"node_id": "c", "title": None, "status": "running", "created_at": NOW - 2},
    ]
    fields = status_fields(run, running_nodes(nodes), NOW)

    assert fields["progress"] == 40.0 and fields["elapsed_time"] == 12.5
    assert fields["current_node"] == "c" and fields["current_step"] == "Fetch, c"
    assert [n["node_id"] for n in fields["current_nodes"]] == ["b", "c"]


def test_a_finished_run_is_complete_and_keeps_its_duration() -> None:
    done = {"status": "succeeded", "elapsed_ms": 1234.5, "started_at": NOW - 100, "progress": 66.7}
    assert progress(done) == 100.0 and elapsed_time(done, NOW) == 1.2345
    assert status_fields(done, [], NOW)["current_step"] is None
    assert progress({"status": "pending"}) == 0.0 and elapsed_time({"status": "pending"}, NOW) == 0
