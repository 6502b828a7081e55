"""One contract for every execution store: SQLite (embedded) and MongoDB (FerretDB in tests).

Writes must be idempotent and order-tolerant: a redelivered, duplicated or late event never
changes a terminal record, and any split or order of a run's events gives the same records.
"""

from __future__ import annotations

import copy
import random
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from flowstream_history.projection import plan
from flowstream_history.stats import workflow_stats
from flowstream_history.store import ExecutionStore
from flowstream_history.store.mongo import MongoStore
from flowstream_history.store.sqlite import SqliteStore
from flowstream_shared.commands import RunOwner
from flowstream_shared.events import RunEventBase, RunStatus
from flowstream_shared.history import ListQuery

from tests.history_support import run_events
from tests.support import GREET

Located = list[tuple[str, RunEventBase]]


def _failing() -> dict[str, Any]:
    definition = copy.deepcopy(GREET)
    definition["nodes"][1]["config"]["template"] = "{{ input.name > 3 }}"  # str > int: fails
    definition["nodes"][1]["retry"] = {"max_attempts": 2, "backoff": 0}
    return definition


@pytest.fixture(params=["sqlite", "mongo"])
def mongo_uri_or_none(request: pytest.FixtureRequest) -> str | None:
    """Which backend: sync, so the session's MongoDB-wire server is set up outside the loop."""
    if request.param == "sqlite":
        return None
    uri: str = request.getfixturevalue("mongodb_uri")
    return uri


@pytest.fixture
async def store(mongo_uri_or_none: str | None, tmp_path: Path) -> AsyncIterator[ExecutionStore]:
    chosen: ExecutionStore
    if mongo_uri_or_none is None:
        chosen = SqliteStore(tmp_path / "history.sqlite3")
    else:
        chosen = MongoStore(mongo_uri_or_none, database=f"t_{uuid.uuid4().hex[:12]}")
    await chosen.open()
    yield chosen
    await chosen.close()


async def _apply(store: ExecutionStore, events: Located, owners: list[RunOwner]) -> None:
    await store.apply(plan(events), {o.run_id: o for o in owners})


async def test_a_run_is_recorded_with_its_nodes_and_timeline(store: ExecutionStore) -> None:
    owner, events = await run_events(GREET, {"name": "Ada"}, end_user="eu-1")
    await _apply(store, events, [owner])
    run = await store.get_run("alice", owner.run_id)
    assert run is not None
    assert run.status == RunStatus.SUCCEEDED
    assert run.outputs == {"answer": "Hello Ada!"}
    assert run.inputs == {"name": "Ada"}
    assert run.end_user == "eu-1" and run.user_id == "alice" and run.task_id == owner.task_id
    assert run.workflow_id == owner.workflow_id and run.workflow_version == 1
    assert run.total_steps == 3 and run.elapsed_ms is not None and run.finished_at is not None
    assert run.last_seq == len(events)
    nodes = await store.nodes(owner.run_id)
    assert [n.node_id for n in nodes] == ["start", "greet", "end"]
    assert {n.status for n in nodes} == {"succeeded"}
    timeline = await store.timeline(owner.run_id)
    assert [t.seq for t in timeline] == list(range(1, len(events) + 1))
    assert timeline[-1].event == "workflow_finished"


async def test_applying_events_twice_changes_nothing(store: ExecutionStore) -> None:
    owner, events = await run_events(GREET, {"name": "Bo"})
    await _apply(store, events, [owner])
    before = (await store.get_run("alice", owner.run_id), await store.nodes(owner.run_id))
    await _apply(store, events, [owner])
    await _apply(store, events[3:7], [owner])
    after = (await store.get_run("alice", owner.run_id), await store.nodes(owner.run_id))
    assert after == before
    assert len(await store.timeline(owner.run_id)) == len(events)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_any_order_and_split_gives_the_same_records(store: ExecutionStore, seed: int) -> None:
    owner, events = await run_events(GREET, {"name": "Cy"})
    shuffled = events[:]
    random.Random(seed).shuffle(shuffled)
    cut = random.Random(seed).randrange(1, len(events))
    await _apply(store, shuffled[:cut], [owner])
    await _apply(store, shuffled[cut:], [owner])
    run = await store.get_run("alice", owner.run_id)
    assert run is not None
    assert run.status == RunStatus.SUCCEEDED and run.outputs == {"answer": "Hello Cy!"}
    assert run.inputs == {"name": "Cy"} and run.last_seq == len(events)
    nodes = await store.nodes(owner.run_id)
    assert [(n.node_id, n.status) for n in nodes] == [
        ("start", "succeeded"), ("greet", "succeeded"), ("end", "succeeded")
    ]  # fmt: skip


async def test_a_late_event_never_changes_a_terminal_record(store: ExecutionStore) -> None:
    owner, events = await run_events(GREET, {"name": "Di"})
    finished = [e for e in events if e[1].event == "workflow_finished"]
    earlier = [e for e in events if e[1].event != "workflow_finished"]
    await _apply(store, finished, [owner])
    terminal = await store.get_run("alice", owner.run_id)
    await _apply(store, earlier, [owner])
    later = await store.get_run("alice", owner.run_id)
    assert terminal is not None and later is not None
    assert later.status == terminal.status == RunStatus.SUCCEEDED
    assert later.outputs == terminal.outputs and later.finished_at == terminal.finished_at
    assert later.inputs == {"name": "Di"}  # start fields still arrive


async def test_failed_runs_keep_each_attempt(store: ExecutionStore) -> None:
    owner, events = await run_events(_failing(), {"name": "Ed"})
    await _apply(store, events, [owner])
    run = await store.get_run("alice", owner.run_id)
    assert run is not None and run.status == RunStatus.FAILED and run.error
    attempts = [n for n in await store.nodes(owner.run_id) if n.node_id == "greet"]
    assert sorted((n.attempt, n.status) for n in attempts) == [(0, "failed"), (1, "retry")]


async def test_other_users_never_see_a_run(store: ExecutionStore) -> None:
    owner, events = await run_events(GREET, {"name": "Fi"})
    await _apply(store, events, [owner])
    assert await store.get_run("mallory", owner.run_id) is None
    assert (await store.list_runs(ListQuery(user_id="mallory"))).total == 0


async def test_lists_filter_page_and_sort_newest_first(store: ExecutionStore) -> None:
    workflow_id = f"wf-{uuid.uuid4().hex[:8]}"
    user = f"u-{uuid.uuid4().hex[:6]}"
    base = time.time() - 1000
    owners = []
    for i in range(5):
        definition, version = (GREET, 1) if i != 2 else (_failing(), 2)
        owner, events = await run_events(
            definition,
            {"name": f"n{i}"},
            workflow_id,
            user,
            created_at=base + i * 10,
            version=version,
        )
        await _apply(store, events, [owner])
        owners.append(owner)
    other, events = await run_events(GREET, {"name": "x"}, user_id=user)
    await _apply(store, events, [other])

    everything = await store.list_runs(ListQuery(user_id=user, workflow_id=workflow_id))
    assert everything.total == 5 and everything.pages == 1
    assert [r.id for r in everything.items] == [o.run_id for o in reversed(owners)]
    page2 = await store.list_runs(ListQuery(user_id=user, workflow_id=workflow_id, size=2, page=2))
    assert [r.id for r in page2.items] == [owners[2].run_id, owners[1].run_id]
    assert page2.total == 5 and page2.pages == 3
    failed = await store.list_runs(ListQuery(user_id=user, status=RunStatus.FAILED))
    assert [r.id for r in failed.items] == [owners[2].run_id]
    window = await store.list_runs(
        ListQuery(
            user_id=user, workflow_id=workflow_id, created_after=base + 15, created_before=base + 35
        )
    )
    assert {r.id for r in window.items} == {owners[2].run_id, owners[3].run_id}
    assert await store.count_runs(user, "failed", None) == 1
    assert await store.count_runs(user, None, base + 35) == 2  # owners[4] and `other`


async def test_stats_from_any_store(store: ExecutionStore) -> None:
    workflow_id = f"wf-{uuid.uuid4().hex[:8]}"
    for definition, version in ((GREET, 1), (GREET, 1), (GREET, 1), (_failing(), 2)):
        owner, events = await run_events(definition, {"name": "s"}, workflow_id, version=version)
        await _apply(store, events, [owner])
    runs = await store.runs_for_stats("alice", workflow_id, 100)
    stats = workflow_stats(
        workflow_id, runs, await store.nodes_for_stats(workflow_id, [r.id for r in runs])
    )
    assert stats.total == 4 and stats.succeeded == 3 and stats.success_rate == 75.0
    assert stats.success_ratio == 0.75 and stats.total_executions == 4
    assert stats.errors_by_type == {"TEMPLATE": 1}
    assert stats.slowest_node is not None and stats.p95_duration_ms is not None
    assert stats.slowest_node["title"] is not None and stats.slowest_node["avg_time"] >= 0
    assert stats.avg_execution_time is not None
    # Both are rounded (to the µs and to the ms): they agree within their rounding.
    assert stats.avg_execution_time == pytest.approx(stats.avg_duration_ms / 1000, abs=2e-6)  # type: ignore[operator]
    # Every node that ran, ranked by its share of the runs' time; each with its p95.
    assert {b.node_id for b in stats.bottlenecks} == {"start", "greet", "end"}
    shares = [b.share for b in stats.bottlenecks]
    assert shares == sorted(shares, reverse=True) and all(0 <= x <= 100 for x in shares)
    assert all(b.p95_time >= 0 and b.executions >= 3 for b in stats.bottlenecks)
    [error] = stats.errors
    assert error.error_type == "TEMPLATE" and error.count == 1 and error.node_id == "greet"
    assert error.message is not None and "not supported" in error.message
    assert error.last_occurrence is not None and error.last_occurrence > time.time() - 300


METERED: dict[str, Any] = {
    "name": "metered",
    "nodes": [
        {"id": "start", "type": "START", "config": {"inputs": [{"name": "n", "type": "number"}]}},
        {
            "id": "count",
            "type": "TEMPLATE",
            "config": {"template": "{{input.n}}"},
            "metrics": {"rows": "{{count.text}}", "twice": "{{input.n * 2}}"},
        },
        {"id": "end", "type": "END", "config": {"outputs": {"n": "{{count.text}}"}}},
    ],
    "connections": [{"from": "start", "to": "count"}, {"from": "count", "to": "end"}],
}


async def test_progress_and_custom_metrics_are_recorded(store: ExecutionStore) -> None:
    workflow_id = f"wf-{uuid.uuid4().hex[:8]}"
    for n in (3, 5):
        owner, events = await run_events(METERED, {"n": n}, workflow_id)
        await _apply(store, events, [owner])
    run = await store.get_run("alice", owner.run_id)
    assert run is not None and run.progress == 100.0
    nodes = {n.node_id: n for n in await store.nodes(owner.run_id)}
    assert nodes["count"].metrics == {"rows": 5.0, "twice": 10.0}
    assert nodes["start"].metrics is None
    runs = await store.runs_for_stats("alice", workflow_id, 100)
    from flowstream_history.custom_metrics import aggregate_custom_metrics

    metrics = aggregate_custom_metrics(
        await store.nodes_for_stats(workflow_id, [r.id for r in runs])
    )
    rows = next(m for m in metrics if m.name == "rows")
    assert (rows.node_id, rows.count, rows.sum, rows.min, rows.max) == ("count", 2, 8.0, 3.0, 5.0)


async def test_active_runs_with_their_running_nodes(store: ExecutionStore) -> None:
    owner, events = await run_events(GREET, {"name": "Ac"})
    # Up to the `node_started` of `greet`: the run is running, `greet` is.
    cut = next(
        i
        for i, (_, e) in enumerate(events)
        if e.event == "node_started" and e.data.node_id == "greet"
    )
    await _apply(store, events[: cut + 1], [owner])
    done, done_events = await run_events(GREET, {"name": "Done"})
    await _apply(store, done_events, [done])
    active = await store.active_runs("alice", 100)
    mine = [(run, nodes) for run, nodes in active if run.id == owner.run_id]
    assert len(mine) == 1
    run, running = mine[0]
    assert run.status == RunStatus.RUNNING and [n.node_id for n in running] == ["greet"]
    assert running[0].title == "Greet"
    assert done.run_id not in {run.id for run, _ in active}
    assert await store.active_runs("mallory", 100) == []
    await _apply(store, events[cut + 1 :], [owner])
    assert owner.run_id not in {run.id for run, _ in await store.active_runs("alice", 100)}
