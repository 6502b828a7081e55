"""The embedded store: SQLite in the data dir, driven through aiosqlite (its own thread).

Each batch is one transaction with `synchronous=FULL`, so a batch acknowledged to JetStream is on
disk. The upserts carry the projection's rules: see `flowstream_history.projection`. Queries are
assembled only from constant column lists and `?` placeholders; every value is a bound parameter.
"""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import aiosqlite
from flowstream_shared.commands import RunOwner
from flowstream_shared.history import (
    ListQuery,
    NodeExecutionRecord,
    RunPage,
    RunRecord,
    TimelineEntry,
)

from flowstream_history.projection import TERMINAL, ProjectionBatch, dumps
from flowstream_history.store import StoreUnavailable

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
"""

# Columns later versions added: (table, column, type), added to an older file when it opens.
ADDED_COLUMNS = (
    ("workflow_executions", "progress", "REAL"),
    ("node_executions", "metrics", "TEXT"),
)

_TERMINAL_SQL = "(" + ",".join(f"'{s}'" for s in TERMINAL) + ")"

UPSERT_RUN = """
INSERT INTO workflow_executions
    (id, task_id, workflow_id, user_id, execution_name, created_at, status, last_seq)
VALUES (:id, :task_id, :workflow_id, :user_id, :execution_name, :created_at, 'running', :seq)
ON CONFLICT(id) DO UPDATE SET
    last_seq = MAX(last_seq, excluded.last_seq),
    created_at = COALESCE(excluded.created_at, workflow_executions.created_at),
    user_id = COALESCE(workflow_executions.user_id, excluded.user_id),
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
SET_PROGRESS = """
UPDATE workflow_executions SET progress = MAX(COALESCE(progress, 0), :progress) WHERE id = :id
"""
INSERT_EVENT = """
INSERT OR IGNORE INTO execution_events (run_id, seq, event, payload, created_at)
VALUES (?, ?, ?, ?, ?)
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


def _run(row: sqlite3.Row) -> RunRecord:
    data = dict(row)
    for key in ("inputs", "outputs"):
        data[key] = json.loads(data[key]) if data[key] else None
    return RunRecord.model_validate(data)


def _node(row: sqlite3.Row) -> NodeExecutionRecord:
    data = dict(row)
    data["index"] = data.pop("idx")
    for key in ("inputs", "outputs", "metrics"):
        data[key] = json.loads(data[key]) if data[key] else None
    return NodeExecutionRecord.model_validate(data)


class SqliteStore:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._db: aiosqlite.Connection | None = None

    @property
    def db(self) -> aiosqlite.Connection:
        assert self._db is not None, "open() first"
        return self._db

    async def open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self._path)
        self._db.row_factory = sqlite3.Row
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute("PRAGMA synchronous=FULL")
        await self._db.executescript(SCHEMA)
        for table, column, kind in ADDED_COLUMNS:
            async with self._db.execute(f"PRAGMA table_info({table})") as cursor:
                present = {row["name"] for row in await cursor.fetchall()}
            if column not in present:
                await self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        await self._db.commit()

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def apply(self, batch: ProjectionBatch, owners: dict[str, RunOwner | None]) -> None:
        try:
            await self._apply(batch, owners)
        except sqlite3.Error as exc:
            await self.db.rollback()
            raise StoreUnavailable(str(exc)) from exc

    async def _apply(self, batch: ProjectionBatch, owners: dict[str, RunOwner | None]) -> None:
        db = self.db
        for run in batch.runs.values():
            owner = owners.get(run.run_id)
            await db.execute(
                UPSERT_RUN,
                {
                    "id": run.run_id,
                    "task_id": run.task_id,
                    "workflow_id": run.workflow_id,
                    "user_id": owner.user_id if owner else None,
                    "execution_name": owner.execution_name if owner else None,
                    # The gateway's acceptance time, to the microsecond; events carry seconds.
                    "created_at": owner.created_at if owner else None,
                    "seq": run.max_seq,
                },
            )
            if run.started is not None:
                started = dict(run.started, id=run.run_id, inputs=dumps(run.started["inputs"]))
                await db.execute(SET_STARTED, started)
            if run.finished is not None:
                finished = dict(run.finished, id=run.run_id, outputs=dumps(run.finished["outputs"]))
                await db.execute(SET_FINISHED, finished)
            elif run.pause_state is not None:
                await db.execute(
                    SET_PAUSE_STATE, {"id": run.run_id, "status": run.pause_state[1].value}
                )
            if run.progress is not None:
                await db.execute(SET_PROGRESS, {"id": run.run_id, "progress": run.progress})
        await db.executemany(
            UPSERT_NODE,
            [
                {
                    **{
                        k: getattr(n, k)
                        for k in (
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
                    },
                    "idx": n.index,
                    "final": int(n.final),
                    "inputs": dumps(n.inputs),
                    "outputs": dumps(n.outputs),
                    "metrics": dumps(n.metrics),
                }
                for n in batch.nodes
            ],
        )
        await db.executemany(
            INSERT_EVENT,
            [(t.run_id, t.seq, t.event, t.payload, t.created_at) for t in batch.timeline],
        )
        await db.commit()

    async def get_run(self, user_id: str, run_id: str) -> RunRecord | None:
        async with self.db.execute(
            f"SELECT {RUN_COLUMNS} FROM workflow_executions WHERE id = ? AND user_id = ?",
            (run_id, user_id),
        ) as cursor:
            row = await cursor.fetchone()
        return _run(row) if row else None

    async def list_runs(self, query: ListQuery) -> RunPage:
        where = ["user_id = ?"]
        args: list[Any] = [query.user_id]
        if query.workflow_id:
            where.append("workflow_id = ?")
            args.append(query.workflow_id)
        if query.status:
            where.append("status = ?")
            args.append(query.status.value)
        if query.created_after is not None:
            where.append("created_at >= ?")
            args.append(query.created_after)
        if query.created_before is not None:
            where.append("created_at <= ?")
            args.append(query.created_before)
        if query.end_user:
            where.append("end_user = ?")
            args.append(query.end_user)
        if query.keyword:
            where.append("(inputs LIKE ? OR outputs LIKE ? OR id = ?)")
            pattern = "%" + query.keyword.replace("%", r"\%") + "%"
            args.extend([pattern, pattern, query.keyword])
        clause = " AND ".join(where)
        async with self.db.execute(
            f"SELECT COUNT(*) FROM workflow_executions WHERE {clause}", args
        ) as cursor:
            total = int((await cursor.fetchone() or (0,))[0])
        async with self.db.execute(
            f"SELECT {RUN_COLUMNS} FROM workflow_executions WHERE {clause} "
            "ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
            [*args, query.size, (query.page - 1) * query.size],
        ) as cursor:
            items = [_run(row) for row in await cursor.fetchall()]
        return RunPage(
            items=items,
            total=total,
            page=query.page,
            size=query.size,
            pages=math.ceil(total / query.size),
        )

    async def nodes(self, run_id: str) -> list[NodeExecutionRecord]:
        async with self.db.execute(
            f"SELECT {NODE_COLUMNS} FROM node_executions WHERE run_id = ? ORDER BY idx, attempt",
            (run_id,),
        ) as cursor:
            return [_node(row) for row in await cursor.fetchall()]

    async def timeline(
        self, run_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[TimelineEntry]:
        async with self.db.execute(
            "SELECT seq, event, payload FROM execution_events WHERE run_id = ? AND seq > ? "
            "ORDER BY seq LIMIT ?",
            (run_id, after_seq, -1 if limit is None else limit),
        ) as cursor:
            rows = await cursor.fetchall()
        return [
            TimelineEntry(seq=r["seq"], event=r["event"], payload=json.loads(r["payload"]))
            for r in rows
        ]

    async def runs_for_stats(self, user_id: str, workflow_id: str, limit: int) -> list[RunRecord]:
        async with self.db.execute(
            f"SELECT {RUN_COLUMNS} FROM workflow_executions WHERE user_id = ? AND workflow_id = ? "
            "ORDER BY created_at DESC LIMIT ?",
            (user_id, workflow_id, limit),
        ) as cursor:
            return [_run(row) for row in await cursor.fetchall()]

    async def nodes_for_stats(
        self, workflow_id: str, run_ids: list[str]
    ) -> list[NodeExecutionRecord]:
        if not run_ids:
            return []
        marks = ",".join("?" * len(run_ids))
        async with self.db.execute(
            f"SELECT {NODE_COLUMNS} FROM node_executions "
            f"WHERE workflow_id = ? AND run_id IN ({marks})",
            (workflow_id, *run_ids),
        ) as cursor:
            return [_node(row) for row in await cursor.fetchall()]

    async def count_runs(
        self, user_id: str, status: str | None, created_after: float | None
    ) -> int:
        where, args = ["user_id = ?"], [user_id]
        if status is not None:
            where.append("status = ?")
            args.append(status)
        if created_after is not None:
            where.append("created_at >= ?")
            args.append(created_after)  # type: ignore[arg-type]
        async with self.db.execute(
            f"SELECT COUNT(*) FROM workflow_executions WHERE {' AND '.join(where)}", args
        ) as cursor:
            return int((await cursor.fetchone() or (0,))[0])

    async def active_runs(
        self, user_id: str, limit: int
    ) -> list[tuple[RunRecord, list[NodeExecutionRecord]]]:
        """The user's running and paused runs, newest first, with their running nodes."""
        async with self.db.execute(
            f"SELECT {RUN_COLUMNS} FROM workflow_executions WHERE user_id = ? "
            "AND status IN (?, ?) ORDER BY created_at DESC LIMIT ?",
            (user_id, *ACTIVE_STATUSES, limit),
        ) as cursor:
            runs = [_run(row) for row in await cursor.fetchall()]
        if not runs:
            return []
        marks = ",".join("?" * len(runs))
        async with self.db.execute(
            f"SELECT {NODE_COLUMNS} FROM node_executions "
            f"WHERE run_id IN ({marks}) AND status = 'running' ORDER BY idx",
            [r.id for r in runs],
        ) as cursor:
            nodes = [_node(row) for row in await cursor.fetchall()]
        return [(run, [n for n in nodes if n.run_id == run.id]) for run in runs]
