"""The SQLite store's schema and statements, and the rows they read back as records.

Statements are assembled only from constant column lists and named or `?` placeholders; every
value is a bound parameter. The upserts carry the projection's rules (`projection.py`).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from flowstream_shared.history import NodeExecutionRecord, RunRecord

from flowstream_history.projection import TERMINAL, NodeFact, dumps

SCHEMA = """
CREATE TABLE IF NOT EXISTS workflow_executions (
    id TEXT PRIMARY KEY, task_id TEXT, workflow_id TEXT NOT NULL, workflow_version INTEGER,
    user_id TEXT, end_user TEXT, execution_name TEXT, inputs TEXT, outputs TEXT,
    status TEXT NOT NULL, error TEXT,
    elapsed_ms REAL, total_steps INTEGER, total_tokens INTEGER, created_at REAL, started_at REAL,
    finished_at REAL, last_seq INTEGER NOT NULL DEFAULT 0, progress REAL
);
CREATE INDEX IF NOT EXISTS runs_by_user ON workflow_executions (user_id, created_at);
CREATE INDEX IF NOT EXISTS runs_by_workflow
    ON workflow_executions (user_id, workflow_id, created_at);
CREATE INDEX IF NOT EXISTS runs_by_status ON workflow_executions (user_id, status, created_at);
CREATE TABLE IF NOT EXISTS node_executions (
    id TEXT PRIMARY KEY, run_id TEXT NOT NULL, workflow_id TEXT NOT NULL, node_id TEXT NOT NULL,
    node_type TEXT NOT NULL, title TEXT, idx INTEGER, attempt INTEGER NOT NULL,
    status TEXT NOT NULL, final INTEGER NOT NULL, inputs TEXT, outputs TEXT, error TEXT,
    elapsed_ms REAL,
    created_at REAL, finished_at REAL, metrics TEXT
);
CREATE INDEX IF NOT EXISTS nodes_by_run ON node_executions (run_id, idx);
CREATE TABLE IF NOT EXISTS execution_events (
    run_id TEXT NOT NULL, seq INTEGER NOT NULL, event TEXT NOT NULL, payload TEXT NOT NULL,
    created_at REAL, PRIMARY KEY (run_id, seq)
);
CREATE TABLE IF NOT EXISTS history_positions (name TEXT PRIMARY KEY, seq INTEGER NOT NULL);
"""

# Columns later versions added: (table, column, type), added to an older file when it opens.
ADDED_COLUMNS = (
    ("workflow_executions", "progress", "REAL"),
    ("node_executions", "metrics", "TEXT"),
)

RUNS_INDEX_POSITION = "runs_index"

_TERMINAL_SQL = "(" + ",".join(f"'{s}'" for s in TERMINAL) + ")"

# A run the run index announced: pending unless already recorded; the index's owner fields
# win (the gateway's acceptance time to the microsecond; events carry seconds).
REGISTER_RUN = """
INSERT INTO workflow_executions
    (id, task_id, workflow_id, user_id, end_user, execution_name, created_at, status, last_seq)
VALUES (:id, :task_id, :workflow_id, :user_id, :end_user, :execution_name, :created_at,
    'pending', 0)
ON CONFLICT(id) DO UPDATE SET
    user_id = COALESCE(workflow_executions.user_id, excluded.user_id),
    end_user = COALESCE(workflow_executions.end_user, excluded.end_user),
    execution_name = COALESCE(workflow_executions.execution_name, excluded.execution_name),
    task_id = COALESCE(workflow_executions.task_id, excluded.task_id),
    created_at = excluded.created_at
"""
# Any event of a run: recorded (running, unless it was pending no longer), with its owner.
UPSERT_RUN = """
INSERT INTO workflow_executions
    (id, task_id, workflow_id, user_id, end_user, execution_name, created_at, status, last_seq)
VALUES (:id, :task_id, :workflow_id, :user_id, :end_user, :execution_name, :created_at,
    'running', :seq)
ON CONFLICT(id) DO UPDATE SET
    last_seq = MAX(last_seq, excluded.last_seq),
    status = CASE WHEN workflow_executions.status = 'pending' THEN 'running'
        ELSE workflow_executions.status END,
    created_at = COALESCE(excluded.created_at, workflow_executions.created_at),
    user_id = COALESCE(workflow_executions.user_id, excluded.user_id),
    end_user = COALESCE(workflow_executions.end_user, excluded.end_user),
    execution_name = COALESCE(workflow_executions.execution_name, excluded.execution_name),
    task_id = COALESCE(workflow_executions.task_id, excluded.task_id)
"""
SET_STARTED = """
UPDATE workflow_executions SET inputs = :inputs, end_user = :end_user,
    workflow_version = :workflow_version, created_at = COALESCE(created_at, :created_at),
    started_at = :started_at
WHERE id = :id
"""
SET_FINISHED = """
UPDATE workflow_executions SET status = :status, outputs = :outputs, error = :error,
    elapsed_ms = :elapsed_ms, total_steps = :total_steps, total_tokens = :total_tokens,
    finished_at = :finished_at
WHERE id = :id
"""
SET_PAUSE_STATE = f"""
UPDATE workflow_executions SET status = :status WHERE id = :id AND status NOT IN {_TERMINAL_SQL}
"""
SET_PROGRESS = """
UPDATE workflow_executions SET progress = MAX(COALESCE(progress, 0), :progress) WHERE id = :id
"""
UPSERT_NODE = """
INSERT INTO node_executions (id, run_id, workflow_id, node_id, node_type, title, idx, attempt,
    status, final, inputs, outputs, error, elapsed_ms, created_at, finished_at, metrics)
VALUES (:id, :run_id, :workflow_id, :node_id, :node_type, :title, :idx, :attempt, :status, :final,
    :inputs, :outputs, :error, :elapsed_ms, :created_at, :finished_at, :metrics)
ON CONFLICT(id) DO UPDATE SET
    metrics = COALESCE(excluded.metrics, node_executions.metrics),
    status = CASE WHEN excluded.final THEN excluded.status ELSE node_executions.status END,
    final = MAX(node_executions.final, excluded.final),
    inputs = COALESCE(excluded.inputs, node_executions.inputs),
    outputs = COALESCE(excluded.outputs, node_executions.outputs),
    error = COALESCE(excluded.error, node_executions.error),
    elapsed_ms = COALESCE(excluded.elapsed_ms, node_executions.elapsed_ms),
    finished_at = COALESCE(excluded.finished_at, node_executions.finished_at),
    created_at = COALESCE(node_executions.created_at, excluded.created_at)
"""
# An attempt still open in a run that has ended was interrupted: it ends with the run. A later
# `node_finished` of it (a late delivery) still sets its own status (UPSERT_NODE: final wins).
STOP_OPEN_ATTEMPTS = f"""
UPDATE node_executions SET status = 'stopped', finished_at = COALESCE(finished_at,
    (SELECT finished_at FROM workflow_executions WHERE id = :run_id))
WHERE run_id = :run_id AND status = 'running' AND EXISTS (
    SELECT 1 FROM workflow_executions WHERE id = :run_id AND status IN {_TERMINAL_SQL})
"""
INSERT_EVENT = """
INSERT OR IGNORE INTO execution_events (run_id, seq, event, payload, created_at)
VALUES (?, ?, ?, ?, ?)
"""
SET_POSITION = """
INSERT INTO history_positions (name, seq) VALUES (?, ?)
ON CONFLICT(name) DO UPDATE SET seq = MAX(seq, excluded.seq)
"""
GET_POSITION = "SELECT seq FROM history_positions WHERE name = ?"
# The run is the user's, and every one of its events up to `seq` is recorded: seqs are
# gap-free from 1 and the timeline is keyed by (run, seq), so counting them is enough.
APPLIED = """
SELECT (SELECT COUNT(*) FROM execution_events WHERE run_id = :run_id AND seq <= :seq)
FROM workflow_executions WHERE id = :run_id AND user_id = :user_id
"""

RUN_COLUMNS = (
    "id, task_id, workflow_id, workflow_version, user_id, end_user, execution_name, inputs, "
    "outputs, status, "
    "error, elapsed_ms, total_steps, total_tokens, created_at, started_at, finished_at, last_seq, "
    "progress"
)
NODE_COLUMNS = (
    "id, run_id, workflow_id, node_id, node_type, title, idx, attempt, status, inputs, outputs, "
    "error, elapsed_ms, created_at, finished_at, metrics"
)
ACTIVE_STATUSES = ("running", "paused")
_NODE_FIELDS = (
    "id",
    "run_id",
    "workflow_id",
    "node_id",
    "node_type",
    "title",
    "attempt",
    "status",
    "error",
    "elapsed_ms",
    "created_at",
    "finished_at",
)


def node_row(node: NodeFact) -> dict[str, Any]:
    return {
        **{k: getattr(node, k) for k in _NODE_FIELDS},
        "idx": node.index,
        "final": int(node.final),
        "inputs": dumps(node.inputs),
        "outputs": dumps(node.outputs),
        "metrics": dumps(node.metrics),
    }


def run_record(row: sqlite3.Row) -> RunRecord:
    data = dict(row)
    for key in ("inputs", "outputs"):
        data[key] = json.loads(data[key]) if data[key] else None
    return RunRecord.model_validate(data)


def node_record(row: sqlite3.Row) -> NodeExecutionRecord:
    data = dict(row)
    data["index"] = data.pop("idx")
    for key in ("inputs", "outputs", "metrics"):
        data[key] = json.loads(data[key]) if data[key] else None
    return NodeExecutionRecord.model_validate(data)
