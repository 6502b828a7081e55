"""The MongoDB operations flowstream relies on, run against FerretDB 1.24.2 (SQLite backend).

These pin down the common subset that works on both FerretDB and MongoDB, so store code written
against it runs in tests and in production alike. Checked against FerretDB v1.24.2 (Nov 2026):

Works:
  - update operators: $set (dotted paths, also into missing sub-documents), $unset, $inc, $max,
    $min, $mul, $setOnInsert, $rename, $currentDate, $push (with $each/$slice), $addToSet, $pull,
    $pullAll, $pop, $bit; upserts; find_one_and_update (sort, upsert, return AFTER).
  - unique and compound indexes with DuplicateKeyError (code 11000), also from an upsert whose
    filter misses an existing _id: the idempotent-projection guard of STACK-NOTES.md.
  - queries: comparison, $in/$nin, $exists, $type, $regex, $and/$or/$not, $elemMatch, $all,
    $size, dotted paths, dates; count_documents with skip/limit; sort (also nested)/skip/limit.
  - aggregation stages: $match, $group, $sort, $skip, $limit, $count, $unwind, $unset, and
    $project/$addFields/$set with inclusion, exclusion and constants only.
  - $group accumulators: $sum (of a field or a constant) and $count. Nothing else.
  - bulk_write(ordered=False) carries on past a failed operation and reports it.

Missing (an error) or wrong (no error, a wrong result):
  - accumulators $max/$min/$avg/$first/$last/$push/$addToSet/$top/...: error "not implemented".
  - WRONG: a $group with two or more accumulators computes only the first; the others come back
    0 (FerretDB feeds one iterator to all of them). Use one accumulator per $group.
  - WRONG: "$field" in $project/$addFields/$set yields the literal string "$field".
  - expression operators ($cond, $add, $literal, $expr in $match, ...): error.
  - stages $lookup, $facet, $replaceRoot, $sortByCount, $bucket, $sample, $out/$merge: error.
  - positional updates ($, $[], arrayFilters) and pipeline updates: error.
  - WRONG: $push with $position is ignored (appends at the end).
  - transactions, TTL indexes (expireAfterSeconds), partial indexes, change streams: error.
"""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import ASCENDING, DESCENDING, InsertOne, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

Db = AsyncDatabase[dict[str, Any]]


async def test_insert_then_find(mongo_db: Db) -> None:
    runs = mongo_db["runs"]
    await runs.insert_one({"_id": "r1", "status": "running", "tags": ["a"]})
    await runs.insert_many([{"_id": "r2", "status": "done"}, {"_id": "r3", "status": "done"}])

    assert await runs.find_one({"_id": "r1"}) == {"_id": "r1", "status": "running", "tags": ["a"]}
    done = await runs.find({"status": "done"}, {"_id": 1}).sort("_id", ASCENDING).to_list()
    assert done == [{"_id": "r2"}, {"_id": "r3"}]


async def test_upsert_with_set_max_and_set_on_insert(mongo_db: Db) -> None:
    """$max keeps the highest sequence whatever the arrival order; $setOnInsert applies once."""
    runs = mongo_db["runs"]

    async def apply(seq: int, status: str) -> None:
        await runs.update_one(
            {"_id": "r1"},
            {
                "$set": {"status": status, f"nodes.n{seq}.state": status},
                "$max": {"last_seq": seq},
                "$setOnInsert": {"created_seq": seq},
            },
            upsert=True,
        )

    await apply(5, "running")
    await apply(3, "late")
    await apply(7, "done")

    assert await runs.find_one({"_id": "r1"}) == {
        "_id": "r1",
        "status": "done",
        "nodes": {"n5": {"state": "running"}, "n3": {"state": "late"}, "n7": {"state": "done"}},
        "last_seq": 7,
        "created_seq": 5,
    }


async def test_sequence_guard_turns_a_replay_into_duplicate_key(mongo_db: Db) -> None:
    """The idempotent projection of STACK-NOTES.md: a replayed event cannot apply twice."""
    runs = mongo_db["runs"]

    async def project(seq: int) -> None:
        await runs.update_one(
            {"_id": "r1", "last_seq": {"$lt": seq}}, {"$set": {"last_seq": seq}}, upsert=True
        )

    await project(1)
    await project(2)
    for replayed in (2, 1):
        with pytest.raises(DuplicateKeyError):
            await project(replayed)
    assert await runs.find_one({"_id": "r1"}) == {"_id": "r1", "last_seq": 2}


async def test_unique_indexes_raise_duplicate_key(mongo_db: Db) -> None:
    tasks = mongo_db["tasks"]
    await tasks.create_index([("run_id", ASCENDING), ("node_id", ASCENDING)], unique=True)
    await tasks.insert_one({"_id": "t1", "run_id": "r1", "node_id": "n1"})

    with pytest.raises(DuplicateKeyError):
        await tasks.insert_one({"_id": "t1", "run_id": "r9", "node_id": "n9"})
    with pytest.raises(DuplicateKeyError):
        await tasks.insert_one({"_id": "t2", "run_id": "r1", "node_id": "n1"})
    await tasks.insert_one({"_id": "t3", "run_id": "r1", "node_id": "n2"})
    assert await tasks.count_documents({}) == 2


async def test_count_documents_with_a_filter(mongo_db: Db) -> None:
    runs = mongo_db["runs"]
    await runs.insert_many(
        [{"_id": f"r{i}", "status": "done" if i % 3 else "failed", "n": i} for i in range(10)]
    )

    assert await runs.count_documents({"status": "failed"}) == 4
    assert await runs.count_documents({"status": "done", "n": {"$gte": 5}}) == 3
    assert await runs.count_documents({"status": {"$in": ["failed", "cancelled"]}}) == 4


async def test_find_with_sort_skip_limit(mongo_db: Db) -> None:
    runs = mongo_db["runs"]
    await runs.insert_many([{"_id": f"r{i}", "group": i % 2, "n": i} for i in range(10)])

    page = (
        await runs.find({"group": 0}, {"n": 1, "_id": 0})
        .sort([("n", DESCENDING)])
        .skip(1)
        .limit(2)
        .to_list()
    )
    assert page == [{"n": 6}, {"n": 4}]
    by_two_keys = await runs.find({}, {"_id": 1}).sort([("group", 1), ("n", -1)]).limit(3).to_list()
    assert by_two_keys == [{"_id": "r8"}, {"_id": "r6"}, {"_id": "r4"}]


async def test_aggregate_match_then_group_with_sum(mongo_db: Db) -> None:
    """One accumulator per $group: FerretDB computes only the first of several (see above)."""
    events = mongo_db["events"]
    await events.insert_many(
        [{"run_id": f"r{i % 3}", "kind": "token" if i % 5 else "step", "n": i} for i in range(13)]
    )
    match: dict[str, Any] = {"$match": {"kind": "token"}}

    totals = await (
        await events.aggregate(
            [match, {"$group": {"_id": "$run_id", "total": {"$sum": "$n"}}}, {"$sort": {"_id": 1}}]
        )
    ).to_list()
    counts = await (
        await events.aggregate(
            [match, {"$group": {"_id": "$run_id", "count": {"$sum": 1}}}, {"$sort": {"_id": 1}}]
        )
    ).to_list()

    # tokens are the n not divisible by 5: r0 ← 3, 6, 9, 12; r1 ← 1, 4, 7; r2 ← 2, 8, 11
    assert totals == [
        {"_id": "r0", "total": 30},
        {"_id": "r1", "total": 12},
        {"_id": "r2", "total": 21},
    ]
    assert counts == [
        {"_id": "r0", "count": 4},
        {"_id": "r1", "count": 3},
        {"_id": "r2", "count": 3},
    ]


async def test_unordered_bulk_write_carries_on_past_a_duplicate(mongo_db: Db) -> None:
    runs = mongo_db["runs"]
    await runs.insert_one({"_id": "r1"})

    with pytest.raises(BulkWriteError) as caught:
        await runs.bulk_write(
            [
                InsertOne({"_id": "r1"}),
                InsertOne({"_id": "r2"}),
                UpdateOne({"_id": "r3"}, {"$set": {"status": "done"}}, upsert=True),
                UpdateOne({"_id": "r1"}, {"$set": {"status": "seen"}}),
            ],
            ordered=False,
        )

    result = caught.value.details
    assert [error["index"] for error in result["writeErrors"]] == [0]
    assert result["writeErrors"][0]["code"] == 11000
    assert (result["nInserted"], result["nUpserted"], result["nModified"]) == (1, 1, 1)
    statuses = await runs.find({}).sort("_id", ASCENDING).to_list()
    assert statuses == [
        {"_id": "r1", "status": "seen"},
        {"_id": "r2"},
        {"_id": "r3", "status": "done"},
    ]
