"""The embedded store: SQLite in the data dir, in WAL mode.

One connection writes, on a thread of its own: each batch is one transaction (one hop off the
event loop, `synchronous=FULL`, so a batch acknowledged to JetStream is on disk). Reads use a
small pool of read-only connections on threads of their own: in WAL mode a reader sees the last
committed batch and never waits for the writer, so reads keep answering while the writer is busy
or blocked. Schema and statements: `sqlite_sql.py`.
"""

from __future__ import annotations

import asyncio
import json
import math
import queue
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from flowstream_shared.history import (
    ListQuery,
    NodeExecutionRecord,
    RunPage,
    RunRecord,
    TimelineEntry,
)

from flowstream_history.projection import Owner, ProjectionBatch, dumps
from flowstream_history.store import StoreUnavailable
from flowstream_history.store.sqlite_sql import (
    ACTIVE_STATUSES,
    ADDED_COLUMNS,
    APPLIED,
    GET_POSITION,
    INSERT_EVENT,
    NODE_COLUMNS,
    REGISTER_RUN,
    RUN_COLUMNS,
    RUNS_INDEX_POSITION,
    SCHEMA,
    SET_FINISHED,
    SET_PAUSE_STATE,
    SET_POSITION,
    SET_PROGRESS,
    SET_STARTED,
    STOP_OPEN_ATTEMPTS,
    UPSERT_NODE,
    UPSERT_RUN,
    node_record,
    node_row,
    run_record,
)

T = TypeVar("T")
BUSY_TIMEOUT_S = 5.0
# SQLite takes at most 32,766 bound values per statement.
_IN_CHUNK = 500


def _connect(path: Path, read_only: bool) -> sqlite3.Connection:
    # Autocommit mode: transactions are begun and ended explicitly. Each connection is used by
    # one thread at a time (the writer's, or a reader borrowed from the pool).
    db = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    db.row_factory = sqlite3.Row
    if read_only:
        db.execute("PRAGMA query_only = 1")
    else:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
    return db


def _open_writer(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = _connect(path, read_only=False)
    db.executescript(SCHEMA)
    for table, column, kind in ADDED_COLUMNS:
        present = {row["name"] for row in db.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
    return db


def _write(db: sqlite3.Connection, batch: ProjectionBatch) -> None:
    db.execute("BEGIN IMMEDIATE")
    try:
        _write_batch(db, batch)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _write_batch(db: sqlite3.Connection, batch: ProjectionBatch) -> None:
    db.executemany(
        REGISTER_RUN,
        [
            {
                "id": entry.run_id,
                "task_id": entry.task_id,
                "workflow_id": entry.workflow_id,
                "user_id": entry.user_id,
                "end_user": entry.end_user or entry.user_id,
                "execution_name": entry.execution_name,
                "created_at": entry.created_at,
            }
            for entry in batch.registrations
        ],
    )
    runs = list(batch.runs.values())
    db.executemany(
        UPSERT_RUN,
        [
            {
                "id": run.run_id,
                "task_id": run.task_id,
                "workflow_id": run.workflow_id,
                "user_id": run.owner.user_id if run.owner else None,
                "end_user": run.owner.end_user if run.owner else None,
                "execution_name": run.owner.execution_name if run.owner else None,
                "created_at": run.owner.created_at if run.owner else None,
                "seq": run.max_seq,
            }
            for run in runs
        ],
    )
    db.executemany(
        SET_STARTED,
        [
            dict(run.started, id=run.run_id, inputs=dumps(run.started["inputs"]))
            for run in runs
            if run.started is not None
        ],
    )
    db.executemany(
        SET_FINISHED,
        [
            dict(run.finished, id=run.run_id, outputs=dumps(run.finished["outputs"]))
            for run in runs
            if run.finished is not None
        ],
    )
    db.executemany(
        SET_PAUSE_STATE,
        [
            {"id": run.run_id, "status": run.pause_state[1].value}
            for run in runs
            if run.finished is None and run.pause_state is not None
        ],
    )
    db.executemany(
        SET_PROGRESS,
        [{"id": run.run_id, "progress": run.progress} for run in runs if run.progress is not None],
    )
    db.executemany(UPSERT_NODE, [node_row(n) for n in batch.nodes])
    db.executemany(STOP_OPEN_ATTEMPTS, [{"run_id": r} for r in batch.ending_run_ids])
    db.executemany(
        INSERT_EVENT,
        [(t.run_id, t.seq, t.event, t.payload, t.created_at) for t in batch.timeline],
    )
    if batch.runs_seq is not None:
        db.execute(SET_POSITION, (RUNS_INDEX_POSITION, batch.runs_seq))


def _chunks(items: list[str]) -> list[list[str]]:
    return [items[i : i + _IN_CHUNK] for i in range(0, len(items), _IN_CHUNK)]


class SqliteStore:
    def __init__(self, path: Path, readers: int = 4) -> None:
        self._path = path
        self._reader_count = readers
        self._writer: sqlite3.Connection | None = None
        self._writer_thread: ThreadPoolExecutor | None = None
        self._reader_threads: ThreadPoolExecutor | None = None
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._reader_connections: list[sqlite3.Connection] = []

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self._writer_thread = ThreadPoolExecutor(1, thread_name_prefix="history-sqlite-writer")
        self._reader_threads = ThreadPoolExecutor(
            self._reader_count, thread_name_prefix="history-sqlite-reader"
        )
        self._writer = await loop.run_in_executor(self._writer_thread, _open_writer, self._path)
        for _ in range(self._reader_count):
            reader = await loop.run_in_executor(self._reader_threads, _connect, self._path, True)
            self._reader_connections.append(reader)
            self._readers.put(reader)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        if self._writer is not None and self._writer_thread is not None:
            await loop.run_in_executor(self._writer_thread, self._writer.close)
            self._writer = None
        for executor in (self._writer_thread, self._reader_threads):
            if executor is not None:
                executor.shutdown(wait=True)
        for reader in self._reader_connections:
            reader.close()
        self._reader_connections.clear()
        self._writer_thread = self._reader_threads = None

    async def apply(self, batch: ProjectionBatch) -> None:
        assert self._writer is not None and self._writer_thread is not None, "open() first"
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._writer_thread, _write, self._writer, batch)
        except sqlite3.Error as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def _read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        """Run `query` on a pooled read connection, off the event loop."""
        assert self._reader_threads is not None, "open() first"

        def borrowed() -> T:
            db = self._readers.get()
            try:
                return query(db)
            finally:
                self._readers.put(db)

        try:
            return await asyncio.get_running_loop().run_in_executor(self._reader_threads, borrowed)
        except sqlite3.Error as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def owners(self, run_ids: list[str]) -> dict[str, Owner]:
        def query(db: sqlite3.Connection) -> dict[str, Owner]:
            found: dict[str, Owner] = {}
            for chunk in _chunks(run_ids):
                marks = ",".join("?" * len(chunk))
                rows = db.execute(
                    "SELECT id, user_id, execution_name, created_at, end_user "
                    f"FROM workflow_executions WHERE id IN ({marks}) AND user_id IS NOT NULL",
                    chunk,
                )
                found.update(
                    {
                        row["id"]: Owner(
                            row["user_id"],
                            row["execution_name"],
                            row["created_at"],
                            row["end_user"],
                        )
                        for row in rows
                    }
                )
            return found

        return await self._read(query) if run_ids else {}

    async def runs_seq(self) -> int:
        def query(db: sqlite3.Connection) -> int:
            row = db.execute(GET_POSITION, (RUNS_INDEX_POSITION,)).fetchone()
            return int(row["seq"]) if row else 0

        return await self._read(query)

    async def applied(self, user_id: str, run_id: str, seq: int) -> bool:
        def query(db: sqlite3.Connection) -> bool:
            row = db.execute(APPLIED, {"run_id": run_id, "seq": seq, "user_id": user_id}).fetchone()
            return row is not None and int(row[0]) >= seq

        return await self._read(query)

    async def get_run(self, user_id: str, run_id: str) -> RunRecord | None:
        def query(db: sqlite3.Connection) -> RunRecord | None:
            row = db.execute(
                f"SELECT {RUN_COLUMNS} FROM workflow_executions WHERE id = ? AND user_id = ?",
                (run_id, user_id),
            ).fetchone()
            return run_record(row) if row else None

        return await self._read(query)

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

        def page(db: sqlite3.Connection) -> tuple[int, list[RunRecord]]:
            db.execute("BEGIN")  # the count and the page from one snapshot
            try:
                total = int(
                    db.execute(
                        f"SELECT COUNT(*) FROM workflow_executions WHERE {clause}", args
                    ).fetchone()[0]
                )
                rows = db.execute(
                    f"SELECT {RUN_COLUMNS} FROM workflow_executions WHERE {clause} "
                    "ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
                    [*args, query.size, (query.page - 1) * query.size],
                ).fetchall()
            finally:
                db.execute("COMMIT")
            return total, [run_record(row) for row in rows]

        total, items = await self._read(page)
        return RunPage(
            items=items,
            total=total,
            page=query.page,
            size=query.size,
            pages=math.ceil(total / query.size),
        )

    async def nodes(self, run_id: str) -> list[NodeExecutionRecord]:
        def query(db: sqlite3.Connection) -> list[NodeExecutionRecord]:
            rows = db.execute(
                f"SELECT {NODE_COLUMNS} FROM node_executions WHERE run_id = ? "
                "ORDER BY idx, attempt",
                (run_id,),
            )
            return [node_record(row) for row in rows]

        return await self._read(query)

    async def timeline(
        self, run_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[TimelineEntry]:
        def query(db: sqlite3.Connection) -> list[TimelineEntry]:
            rows = db.execute(
                "SELECT seq, event, payload FROM execution_events WHERE run_id = ? AND seq > ? "
                "ORDER BY seq LIMIT ?",
                (run_id, after_seq, -1 if limit is None else limit),
            )
            return [
                TimelineEntry(seq=r["seq"], event=r["event"], payload=json.loads(r["payload"]))
                for r in rows
            ]

        return await self._read(query)

    async def runs_for_stats(self, user_id: str, workflow_id: str, limit: int) -> list[RunRecord]:
        def query(db: sqlite3.Connection) -> list[RunRecord]:
            rows = db.execute(
                f"SELECT {RUN_COLUMNS} FROM workflow_executions "
                "WHERE user_id = ? AND workflow_id = ? ORDER BY created_at DESC LIMIT ?",
                (user_id, workflow_id, limit),
            )
            return [run_record(row) for row in rows]

        return await self._read(query)

    async def nodes_for_stats(
        self, workflow_id: str, run_ids: list[str]
    ) -> list[NodeExecutionRecord]:
        def query(db: sqlite3.Connection) -> list[NodeExecutionRecord]:
            found: list[NodeExecutionRecord] = []
            for chunk in _chunks(run_ids):
                marks = ",".join("?" * len(chunk))
                rows = db.execute(
                    f"SELECT {NODE_COLUMNS} FROM node_executions "
                    f"WHERE workflow_id = ? AND run_id IN ({marks})",
                    (workflow_id, *chunk),
                )
                found.extend(node_record(row) for row in rows)
            return found

        return await self._read(query) if run_ids else []

    async def count_runs(
        self, user_id: str, status: str | None, created_after: float | None
    ) -> int:
        where: list[str] = ["user_id = ?"]
        args: list[Any] = [user_id]
        if status is not None:
            where.append("status = ?")
            args.append(status)
        if created_after is not None:
            where.append("created_at >= ?")
            args.append(created_after)

        def query(db: sqlite3.Connection) -> int:
            row = db.execute(
                f"SELECT COUNT(*) FROM workflow_executions WHERE {' AND '.join(where)}", args
            ).fetchone()
            return int(row[0])

        return await self._read(query)

    async def active_runs(
        self, user_id: str, limit: int
    ) -> list[tuple[RunRecord, list[NodeExecutionRecord]]]:
        """The user's running and paused runs, newest first, with their running nodes."""

        def query(db: sqlite3.Connection) -> list[tuple[RunRecord, list[NodeExecutionRecord]]]:
            db.execute("BEGIN")
            try:
                runs = [
                    run_record(row)
                    for row in db.execute(
                        f"SELECT {RUN_COLUMNS} FROM workflow_executions WHERE user_id = ? "
                        "AND status IN (?, ?) ORDER BY created_at DESC LIMIT ?",
                        (user_id, *ACTIVE_STATUSES, limit),
                    )
                ]
                if not runs:
                    return []
                marks = ",".join("?" * len(runs))
                nodes = [
                    node_record(row)
                    for row in db.execute(
                        f"SELECT {NODE_COLUMNS} FROM node_executions "
                        f"WHERE run_id IN ({marks}) AND status = 'running' ORDER BY idx",
                        [r.id for r in runs],
                    )
                ]
            finally:
                db.execute("COMMIT")
            return [(run, [n for n in nodes if n.run_id == run.id]) for run in runs]

        return await self._read(query)
