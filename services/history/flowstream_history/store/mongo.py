"""The MongoDB store, through PyMongo's native async client.

Written to run on MongoDB and on FerretDB 1.x alike: plain upserts with `$set`, `$setOnInsert` and
`$max`, finds with sort/skip/limit, `count_documents`; no transactions, no `$lookup`/`$facet`. Each
batch's writes go in ordered bulk writes (a run's upsert before its updates); idempotent writes make
order free, and FerretDB stalls on large unordered bulk writes (it runs them concurrently against
SQLite's single writer). The projection's rules: `flowstream_history.projection`.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from flowstream_shared.commands import RunOwner
from flowstream_shared.history import (
    ListQuery,
    NodeExecutionRecord,
    RunPage,
    RunRecord,
    TimelineEntry,
)
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, PyMongoError

from flowstream_history.projection import TERMINAL, ProjectionBatch
from flowstream_history.store import StoreUnavailable

# FerretDB's cost per bulk write grows faster than its size (40 runs' nodes in one bulk took
# over 15 s, in chunks well under one); MongoDB does not mind chunks.
BULK_CHUNK = 64
DUPLICATE_KEY = 11000

RUNS = "workflow_executions"
NODES = "node_executions"
EVENTS = "execution_events"


def _run(doc: dict[str, Any]) -> RunRecord:
    doc["id"] = doc.pop("_id")
    return RunRecord.model_validate(doc)


def _node(doc: dict[str, Any]) -> NodeExecutionRecord:
    doc["id"] = doc.pop("_id")
    return NodeExecutionRecord.model_validate(doc)


class MongoStore:
    def __init__(self, uri: str, database: str | None = None) -> None:
        self._uri = uri
        self._database = database
        self._client: AsyncMongoClient[dict[str, Any]] | None = None
        self._db: AsyncDatabase[dict[str, Any]] | None = None

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

    async def apply(self, batch: ProjectionBatch, owners: dict[str, RunOwner | None]) -> None:
        try:
            await self._apply(batch, owners)
        except PyMongoError as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def _apply(self, batch: ProjectionBatch, owners: dict[str, RunOwner | None]) -> None:
        run_ops: list[UpdateOne] = []
        for run in batch.runs.values():
            owner = owners.get(run.run_id)
            upsert: dict[str, Any] = {
                "$setOnInsert": {
                    "workflow_id": run.workflow_id,
                    "task_id": run.task_id,
                    "status": "running",
                },
                "$max": {"last_seq": run.max_seq},
            }
            if owner is not None:
                # The gateway's acceptance time, to the microsecond; events carry seconds.
                upsert["$set"] = {
                    "user_id": owner.user_id,
                    "execution_name": owner.execution_name,
                    "created_at": owner.created_at,
                }
            run_ops.append(UpdateOne({"_id": run.run_id}, upsert, upsert=True))
            if run.started is not None:
                started = dict(run.started)
                if owner is not None:
                    del started["created_at"]
                run_ops.append(UpdateOne({"_id": run.run_id}, {"$set": started}))
            if run.progress is not None:
                run_ops.append(UpdateOne({"_id": run.run_id}, {"$max": {"progress": run.progress}}))
            if run.finished is not None:
                run_ops.append(UpdateOne({"_id": run.run_id}, {"$set": run.finished}))
            elif run.pause_state is not None:
                run_ops.append(
                    UpdateOne(
                        {"_id": run.run_id, "status": {"$nin": list(TERMINAL)}},
                        {"$set": {"status": run.pause_state[1].value}},
                    )
                )
        await self._bulk(RUNS, run_ops)
        node_ops = []
        for n in batch.nodes:
            identity = {
                "run_id": n.run_id,
                "workflow_id": n.workflow_id,
                "node_id": n.node_id,
                "node_type": n.node_type,
                "title": n.title,
                "index": n.index,
                "attempt": n.attempt,
                "created_at": n.created_at,
            }
            if n.final:
                results = {
                    "status": n.status,
                    "final": True,
                    "outputs": n.outputs,
                    "error": n.error,
                    "elapsed_ms": n.elapsed_ms,
                    "finished_at": n.finished_at,
                }
                if n.inputs is not None:
                    results["inputs"] = n.inputs
                if n.metrics is not None:
                    results["metrics"] = n.metrics
                update = {"$set": results, "$setOnInsert": identity}
            else:
                update = {
                    "$setOnInsert": {
                        **identity,
                        "status": n.status,
                        "final": False,
                        "inputs": n.inputs,
                    }
                }
            node_ops.append(UpdateOne({"_id": n.id}, update, upsert=True))
        await self._bulk(NODES, node_ops)
        # Timeline entries never change once written: inserts, and a duplicate key (a redelivered
        # event) means "already recorded". FerretDB's upserts scan; its inserts do not.
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

    async def _bulk(self, collection: str, ops: list[UpdateOne]) -> None:
        for start in range(0, len(ops), BULK_CHUNK):
            await self.db[collection].bulk_write(ops[start : start + BULK_CHUNK], ordered=True)

    async def get_run(self, user_id: str, run_id: str) -> RunRecord | None:
        doc = await self.db[RUNS].find_one({"_id": run_id, "user_id": user_id})
        return _run(doc) if doc else None

    async def list_runs(self, query: ListQuery) -> RunPage:
        where: dict[str, Any] = {"user_id": query.user_id}
        if query.workflow_id:
            where["workflow_id"] = query.workflow_id
        if query.status:
            where["status"] = query.status.value
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

    async def nodes(self, run_id: str) -> list[NodeExecutionRecord]:
        cursor = (
            self.db[NODES]
            .find({"run_id": run_id})
            .sort([("index", ASCENDING), ("attempt", ASCENDING)])
        )
        return [_node(doc) async for doc in cursor]

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

    async def runs_for_stats(self, user_id: str, workflow_id: str, limit: int) -> list[RunRecord]:
        cursor = (
            self.db[RUNS]
            .find({"user_id": user_id, "workflow_id": workflow_id})
            .sort("created_at", DESCENDING)
            .limit(limit)
        )
        return [_run(doc) async for doc in cursor]

    async def nodes_for_stats(
        self, workflow_id: str, run_ids: list[str]
    ) -> list[NodeExecutionRecord]:
        if not run_ids:
            return []
        cursor = self.db[NODES].find({"workflow_id": workflow_id, "run_id": {"$in": run_ids}})
        return [_node(doc) async for doc in cursor]

    async def count_runs(
        self, user_id: str, status: str | None, created_after: float | None
    ) -> int:
        where: dict[str, Any] = {"user_id": user_id}
        if status is not None:
            where["status"] = status
        if created_after is not None:
            where["created_at"] = {"$gte": created_after}
        return await self.db[RUNS].count_documents(where)

    async def active_runs(
        self, user_id: str, limit: int
    ) -> list[tuple[RunRecord, list[NodeExecutionRecord]]]:
        """The user's running and paused runs, newest first, with their running nodes."""
        cursor = (
            self.db[RUNS]
            .find({"user_id": user_id, "status": {"$in": ["running", "paused"]}})
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
