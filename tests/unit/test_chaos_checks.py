"""The chaos suite's checks catch what they promise to: a broken log, a node run twice."""

from __future__ import annotations

from typing import Any

from chaos.checks import log_integrity, repeated_executions
from chaos.eventlog import EventLog, RunLog, StoredEvent
from chaos.faults import FaultRecord


def event(seq: int, name: str, at: float, **data: Any) -> StoredEvent:
    return StoredEvent(seq, at, name, seq, {"event": name, "seq": seq, "data": data})


def log_of(*events: StoredEvent, run_id: str = "r1") -> EventLog:
    return EventLog({run_id: RunLog(run_id, list(events))}, len(events), 0)


def clean_run() -> list[StoredEvent]:
    return [
        event(1, "workflow_started", 1.0),
        event(2, "node_started", 1.1, node_id="call"),
        event(3, "node_finished", 1.5, node_id="call", status="succeeded"),
        event(4, "workflow_finished", 1.6, status="succeeded"),
    ]


def test_a_clean_log_breaks_no_promise() -> None:
    checks = log_integrity(log_of(*clean_run()))

    assert {name: c.failures for name, c in checks.items()} == {
        "duplicate_finished": 0,
        "seq_gaps": 0,
        "seq_duplicates": 0,
        "seq_out_of_order": 0,
    }


def test_a_gap_a_repeat_a_second_finish_and_disorder_are_each_caught() -> None:
    events = clean_run()
    broken = [events[0], events[2], events[1], events[1], events[3], events[3]]
    checks = log_integrity(log_of(*[events[0], events[3]]))
    assert checks["seq_gaps"].failures == 1

    checks = log_integrity(log_of(*broken))
    assert checks["seq_duplicates"].failures == 1
    assert checks["duplicate_finished"].failures == 1
    assert checks["seq_out_of_order"].failures == 1


def test_a_finished_node_called_again_is_caught_and_an_interrupted_one_is_allowed() -> None:
    log = log_of(*clean_run())
    engine_killed = FaultRecord("engine SIGKILL", "engine-1", at=1.3, interrupts_runs=True)

    # In flight when the engine died: a second call is the hand-over's, allowed.
    checks, totals = repeated_executions(
        [("r1", "call", 1.2), ("r1", "call", 1.4)], log, [engine_killed]
    )
    assert checks["finished_nodes_executed_twice"].failures == 0
    assert totals["repeats_in_flight_at_a_fault"] == 1

    # No fault: the same two calls are a node executed twice.
    checks, _ = repeated_executions([("r1", "call", 1.2), ("r1", "call", 1.4)], log, [])
    assert checks["finished_nodes_executed_twice"].failures == 1

    # A call after its node_finished was stored.
    checks, _ = repeated_executions(
        [("r1", "call", 1.2), ("r1", "call", 2.0)], log, [engine_killed]
    )
    assert checks["called_after_node_finished_stored"].failures == 1
