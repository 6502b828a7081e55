"""The MongoDB store, through PyMongo's native async client.

Written to run on MongoDB and on FerretDB 1.x alike: plain upserts with `$set`, `$setOnInsert` and
`$max`, finds with sort/skip/limit, `count_documents`; no transactions, no `$lookup`/`$facet`. Each
batch's writes go in ordered bulk writes (FerretDB stalls on large unordered ones: it runs them
concurrently against SQLite's single writer): the timeline, then the node attempts, then the run
records. The projection's rules: `flowstream_history.projection`; the writes: `mongo_writes.py`.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, ParamSpec, TypeVar

from flowstream_shared.history import (
    ListQuery,
    NodeExecutionRecord,
    RunPage,
    RunRecord,
    TimelineEntry,
)
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, UpdateMany, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, PyMongoError

from flowstream_history.projection import TERMINAL, Owner, ProjectionBatch
from flowstream_history.store import StoreUnavailable
from flowstream_history.store.mongo_writes import (
    SeenRuns,
    node_ops,
    registrations,
    run_ops,
    runs_to_ask_about,
    stop_open_attempts,
)

# FerretDB's cost per bulk write grows faster than its size (40 runs' nodes in one bulk took
# over 15 s, in chunks well under one); MongoDB does not mind chunks.
BULK_CHUNK = 64
DUPLICATE_KEY = 11000

RUNS = "workflow_executions"
NODES = "node_executions"
EVENTS = "execution_events"
POSITIONS = "history_positions"
RUNS_INDEX_POSITION = "runs_index"


P = ParamSpec("P")
T = TypeVar("T")


def _unavailable_on_error(
    read: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """A read the database cannot answer now is StoreUnavailable (503), like a failed write."""

    @functools.wraps(read)
    async def reading(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await read(*args, **kwargs)
        except PyMongoError as exc:
            raise StoreUnavailable(str(exc)) from exc

    return reading


def _run(doc: dict[str, Any]) -> RunRecord:
    doc["id"] = doc.pop("_id")
    if doc.get("status") == "pending" and doc.get("recorded"):
        doc["status"] = "running"  # registered pending, and its events are being recorded
    return RunRecord.model_validate(doc)


def _with_status(where: dict[str, Any], statuses: list[str]) -> dict[str, Any]:
    """`where`, narrowed to runs in one of `statuses` as reads show them: a run stored
    `pending` that has recorded events is running (`mongo_writes.py`)."""
    stored: list[dict[str, Any]] = []
    plain = [s for s in statuses if s != "pending"]
    if plain:
        stored.append({"status": {"$in": plain}})
    if "running" in statuses:
        stored.append({"status": "pending", "recorded": True})
    if "pending" in statuses:
        stored.append({"status": "pending", "recorded": {"$ne": True}})
    if len(stored) == 1:
        return {**where, **stored[0]}
    return {"$and": [where, {"$or": stored}]}


def _node(doc: dict[str, Any]) -> NodeExecutionRecord:
    doc["id"] = doc.pop("_id")
    return NodeExecutionRecord.model_validate(doc)


class MongoStore:
    def __init__(self, uri: str, database: str | None = None) -> None:
        self._uri = uri
        self._database = database
        self._client: AsyncMongoClient[dict[str, Any]] | None = None
        self._db: AsyncDatabase[dict[str, Any]] | None = None
        self._seen = SeenRuns()

    @property
    def db(self) -> AsyncDatabase[dict[str, Any]]:
        assert self._db is not None, "open() first"
        return self._db

    async def open(self) -> None:
        # Every operation is bounded: an unreachable or vanished database must surface as
        # StoreUnavailable (and a retry), never as a write waiting forever on a dead socket.
        self._client = AsyncMongoClient(
            self._uri,
            serverSelectionTimeoutMS=2000,
            connectTimeoutMS=2000,
            socketTimeoutMS=10_000,
            timeoutMS=15_000,
            tz_aware=False,
        )
        self._db = (
            self._client[self._database]
            if self._database
            else self._client.get_default_database("flowstream")
        )
        try:
            await self.db[RUNS].create_index([("user_id", ASCENDING), ("created_at", DESCENDING)])
            await self.db[RUNS].create_index(
                [("user_id", ASCENDING), ("workflow_id", ASCENDING), ("created_at", DESCENDING)]
            )
            await self.db[RUNS].create_index(
                [("user_id", ASCENDING), ("status", ASCENDING), ("created_at", DESCENDING)]
            )
            await self.db[NODES].create_index([("run_id", ASCENDING), ("index", ASCENDING)])
            await self.db[EVENTS].create_index([("run_id", ASCENDING), ("seq", ASCENDING)])
        except PyMongoError as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def apply(self, batch: ProjectionBatch) -> None:
        try:
            await self._apply(batch)
        except PyMongoError as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def _apply(self, batch: ProjectionBatch) -> None:
        # No transactions here: the run records go last, so a record (its status, its
        # `applied_seq`, which reads wait on) never shows more than its nodes and timeline do.
        state = self._seen.after(batch)
        ended_elsewhere = await self._ended_before(runs_to_ask_about(batch, self._seen))
        await self._insert_timeline(batch)
        await self._bulk(
            NODES,
            [*node_ops(batch), *stop_open_attempts(batch, state, self._seen, ended_elsewhere)],
        )
        await self._bulk(RUNS, [*registrations(batch), *run_ops(batch, state)])
        if batch.runs_seq is not None:
            await self.db[POSITIONS].update_one(
                {"_id": RUNS_INDEX_POSITION}, {"$max": {"seq": batch.runs_seq}}, upsert=True
            )
        self._seen.wrote(state)  # only once written: a failed batch is sent whole again

    async def _insert_timeline(self, batch: ProjectionBatch) -> None:
        """Timeline entries never change once written: inserts, and a duplicate key (a
        redelivered event) means "already recorded". FerretDB's upserts scan; its inserts do
        not."""
        documents = [
            {
                "_id": f"{t.run_id}:{t.seq}",
                "run_id": t.run_id,
                "seq": t.seq,
                "event": t.event,
                "payload": t.payload,
                "created_at": t.created_at,
            }
            for t in batch.timeline
        ]
        for start in range(0, len(documents), BULK_CHUNK * 8):
            try:
                await self.db[EVENTS].insert_many(
                    documents[start : start + BULK_CHUNK * 8], ordered=False
                )
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(e.get("code") != DUPLICATE_KEY for e in errors) or exc.details.get(
                    "writeConcernErrors"
                ):
                    raise

    async def _ended_before(self, run_ids: list[str]) -> dict[str, float | None]:
        """Which of these runs had ended already (and when)."""
        if not run_ids:
            return {}
        cursor = self.db[RUNS].find(
            {"_id": {"$in": run_ids}, "status": {"$in": list(TERMINAL)}}, {"finished_at": 1}
        )
        return {doc["_id"]: doc.get("finished_at") async for doc in cursor}

    async def _bulk(self, collection: str, ops: Sequence[UpdateOne | UpdateMany]) -> None:
        for start in range(0, len(ops), BULK_CHUNK):
            await self.db[collection].bulk_write(ops[start : start + BULK_CHUNK], ordered=True)

    @_unavailable_on_error
    async def owners(self, run_ids: list[str]) -> dict[str, Owner]:
        if not run_ids:
            return {}
        cursor = self.db[RUNS].find(
            {"_id": {"$in": run_ids}},
            {"user_id": 1, "execution_name": 1, "created_at": 1, "end_user": 1},
        )
        return {
            doc["_id"]: Owner(
                doc["user_id"],
                doc.get("execution_name"),
                doc.get("created_at"),
                doc.get("end_user"),
            )
            async for doc in cursor
            if doc.get("user_id")
        }

    async def runs_seq(self) -> int:
        try:
            doc = await self.db[POSITIONS].find_one({"_id": RUNS_INDEX_POSITION})
        except PyMongoError as exc:
            raise StoreUnavailable(str(exc)) from exc
        return int(doc["seq"]) if doc else 0

    @_unavailable_on_error
    async def applied(self, user_id: str, run_id: str, seq: int) -> bool:
        # By `_id` alone (FerretDB scans for anything else): how far its timeline is complete
        # as the writer knows it (`applied_seq`); the read barrier also watches the consumer.
        doc = await self.db[RUNS].find_one({"_id": run_id}, {"user_id": 1, "applied_seq": 1})
        if doc is None or doc.get("user_id") != user_id:
            return False
        return seq == 0 or int(doc.get("applied_seq") or 0) >= seq

    @_unavailable_on_error
    async def get_run(self, user_id: str, run_id: str) -> RunRecord | None:
        doc = await self.db[RUNS].find_one({"_id": run_id})
        return _run(doc) if doc and doc.get("user_id") == user_id else None

    @_unavailable_on_error
    async def list_runs(self, query: ListQuery) -> RunPage:
        where: dict[str, Any] = {"user_id": query.user_id}
        if query.workflow_id:
            where["workflow_id"] = query.workflow_id
        created: dict[str, float] = {}
        if query.created_after is not None:
            created["$gte"] = query.created_after
        if query.created_before is not None:
            created["$lte"] = query.created_before
        if created:
            where["created_at"] = created
        if query.end_user:
            where["end_user"] = query.end_user
        if query.keyword:
            where["$or"] = [
                {"_id": query.keyword},
                {"end_user": {"$regex": re.escape(query.keyword)}},
            ]
        if query.status:
            where = _with_status(where, [query.status.value])
        total = await self.db[RUNS].count_documents(where)
        cursor = (
            self.db[RUNS]
            .find(where)
            .sort([("created_at", DESCENDING), ("_id", DESCENDING)])
            .skip((query.page - 1) * query.size)
            .limit(query.size)
        )
        items = [_run(doc) async for doc in cursor]
        return RunPage(
            items=items,
            total=total,
            page=query.page,
            size=query.size,
            pages=math.ceil(total / query.size),
        )

    @_unavailable_on_error
    async def nodes(self, run_id: str) -> list[NodeExecutionRecord]:
        cursor = (
            self.db[NODES]
            .find({"run_id": run_id})
            .sort([("index", ASCENDING), ("attempt", ASCENDING)])
        )
        return [_node(doc) async for doc in cursor]

    @_unavailable_on_error
    async def timeline(
        self, run_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[TimelineEntry]:
        cursor = (
            self.db[EVENTS]
            .find({"run_id": run_id, "seq": {"$gt": after_seq}})
            .sort("seq", ASCENDING)
            .limit(limit or 0)
        )
        return [
            TimelineEntry(seq=doc["seq"], event=doc["event"], payload=json.loads(doc["payload"]))
            async for doc in cursor
        ]

    @_unavailable_on_error
    async def runs_for_stats(self, user_id: str, workflow_id: str, limit: int) -> list[RunRecord]:
        cursor = (
            self.db[RUNS]
            .find({"user_id": user_id, "workflow_id": workflow_id})
            .sort("created_at", DESCENDING)
            .limit(limit)
        )
        return [_run(doc) async for doc in cursor]

    @_unavailable_on_error
    async def nodes_for_stats(
        self, workflow_id: str, run_ids: list[str]
    ) -> list[NodeExecutionRecord]:
        if not run_ids:
            return []
        cursor = self.db[NODES].find({"workflow_id": workflow_id, "run_id": {"$in": run_ids}})
        return [_node(doc) async for doc in cursor]

    @_unavailable_on_error
    async def count_runs(
        self, user_id: str, status: str | None, created_after: float | None
    ) -> int:
        where: dict[str, Any] = {"user_id": user_id}
        if created_after is not None:
            where["created_at"] = {"$gte": created_after}
        if status is not None:
            where = _with_status(where, [status])
        return await self.db[RUNS].count_documents(where)

    @_unavailable_on_error
    async def active_runs(
        self, user_id: str, limit: int
    ) -> list[tuple[RunRecord, list[NodeExecutionRecord]]]:
        """The user's running and paused runs, newest first, with their running nodes."""
        cursor = (
            self.db[RUNS]
            .find(_with_status({"user_id": user_id}, ["running", "paused"]))
            .sort("created_at", DESCENDING)
            .limit(limit)
        )
        runs = [_run(doc) async for doc in cursor]
        if not runs:
            return []
        node_cursor = (
            self.db[NODES]
            .find({"run_id": {"$in": [r.id for r in runs]}, "status": "running"})
            .sort("index", ASCENDING)
        )
        nodes = [_node(doc) async for doc in node_cursor]
        return [(run, [n for n in nodes if n.run_id == run.id]) for run in runs]
