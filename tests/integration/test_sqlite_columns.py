"""An execution store written by an earlier version gains the columns later versions added."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from flowstream_history.store.sqlite import SqliteStore

from tests.history_support import batch_of, run_events
from tests.integration.test_store_contract import METERED

# The tables as the first release created them.
EARLIER_SCHEMA = """
CREATE TABLE workflow_executions (
    id TEXT PRIMARY KEY, task_id TEXT, workflow_id TEXT NOT NULL, workflow_version INTEGER,
    user_id TEXT, end_user TEXT, execution_name TEXT, inputs TEXT, outputs TEXT,
    status TEXT NOT NULL, error TEXT,
    elapsed_ms REAL, total_steps INTEGER, total_tokens INTEGER, created_at REAL, started_at REAL,
    finished_at REAL, last_seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE node_executions (
    id TEXT PRIMARY KEY, run_id TEXT NOT NULL, workflow_id TEXT NOT NULL, node_id TEXT NOT NULL,
    node_type TEXT NOT NULL, title TEXT, idx INTEGER, attempt INTEGER NOT NULL,
    status TEXT NOT NULL, final INTEGER NOT NULL, inputs TEXT, outputs TEXT, error TEXT,
    elapsed_ms REAL, created_at REAL, finished_at REAL
);
INSERT INTO workflow_executions (id, workflow_id, status, user_id) VALUES
    ('old-run', 'wf', 'succeeded', 'alice');
"""


async def test_an_earlier_file_gains_progress_and_metrics(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(EARLIER_SCHEMA)
    store = SqliteStore(path)
    await store.open()
    try:
        old = await store.get_run("alice", "old-run")
        assert old is not None and old.progress is None  # kept, with the new column empty
        owner, events = await run_events(METERED, {"n": 7})
        await store.apply(batch_of(events, [owner]))
        run = await store.get_run("alice", owner.run_id)
        assert run is not None and run.progress == 100.0
        nodes = {n.node_id: n for n in await store.nodes(owner.run_id)}
        assert nodes["count"].metrics == {"rows": 7.0, "twice": 14.0}
    finally:
        await store.close()
