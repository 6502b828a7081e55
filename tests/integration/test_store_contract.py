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
from flowstream_history.projection import Delivered, Owner, ProjectionBatch
from flowstream_history.stats import workflow_stats
from flowstream_history.store import ExecutionStore
from flowstream_history.store.mongo import MongoStore
from flowstream_history.store.sqlite import SqliteStore
from flowstream_shared.commands import RunOwner
from flowstream_shared.events import RunStatus
from flowstream_shared.history import ListQuery

from tests.history_support import batch_of, run_events
from tests.support import GREET

Located = list[Delivered]


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
    await store.apply(batch_of(events, owners))


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
    finished = [e for e in events if e.event.event == "workflow_finished"]
    earlier = [e for e in events if e.event.event != "workflow_finished"]
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
        for i, d in enumerate(events)
        if d.event.event == "node_started" and d.event.data.node_id == "greet"
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


def _entry(owner: RunOwner, **changes: Any) -> RunOwner:
    return owner.model_copy(update={"execution_name": "nightly", **changes})


async def test_an_indexed_run_is_pending_until_its_first_event(store: ExecutionStore) -> None:
    owner, events = await run_events(GREET, {"name": "Pe"}, user_id=f"u-{uuid.uuid4().hex[:6]}")
    entry = _entry(owner, created_at=owner.created_at + 0.123456)
    await store.apply(ProjectionBatch(registrations=[entry], runs_seq=41))
    pending = await store.get_run(owner.user_id, owner.run_id)
    assert pending is not None and pending.status == RunStatus.PENDING
    assert pending.execution_name == "nightly" and pending.created_at == entry.created_at
    assert pending.workflow_id == owner.workflow_id and pending.last_seq == 0
    listed = await store.list_runs(ListQuery(user_id=owner.user_id, status=RunStatus.PENDING))
    assert [r.id for r in listed.items] == [owner.run_id]
    assert await store.count_runs(owner.user_id, "pending", None) == 1
    assert await store.owners([owner.run_id, "nobody"]) == {
        owner.run_id: Owner(owner.user_id, "nightly", entry.created_at, owner.user_id)
    }
    assert await store.runs_seq() == 41
    assert await store.applied(owner.user_id, owner.run_id, 0)
    assert not await store.applied("mallory", owner.run_id, 0)

    await _apply(store, events[:1], [entry])  # workflow_started
    running = await store.get_run(owner.user_id, owner.run_id)
    assert running is not None and running.status == RunStatus.RUNNING
    assert await store.count_runs(owner.user_id, "running", None) == 1
    assert await store.count_runs(owner.user_id, "pending", None) == 0
    by_status = await store.list_runs(ListQuery(user_id=owner.user_id, status=RunStatus.RUNNING))
    assert [r.id for r in by_status.items] == [owner.run_id]
    assert [r.id for r, _ in await store.active_runs(owner.user_id, 10)] == [owner.run_id]
    assert running.created_at == entry.created_at and running.execution_name == "nightly"
    await _apply(store, events[1:], [entry])
    await store.apply(ProjectionBatch(registrations=[entry], runs_seq=40))
    done = await store.get_run(owner.user_id, owner.run_id)
    assert done is not None and done.status == RunStatus.SUCCEEDED  # an entry changes no status
    assert await store.runs_seq() == 41  # the position only grows


async def test_a_run_recorded_first_keeps_its_status_when_its_entry_arrives(
    store: ExecutionStore,
) -> None:
    owner, events = await run_events(GREET, {"name": "Late"})
    await _apply(store, events, [])  # its owner was not known then
    assert await store.get_run("alice", owner.run_id) is None
    await store.apply(ProjectionBatch(registrations=[_entry(owner)]))
    run = await store.get_run("alice", owner.run_id)
    assert run is not None and run.status == RunStatus.SUCCEEDED and run.execution_name == "nightly"


async def test_no_attempt_stays_running_in_a_run_that_has_ended(store: ExecutionStore) -> None:
    owner, events = await run_events(GREET, {"name": "Hand"})

    def is_greet_finished(d: Delivered) -> bool:
        return d.event.event == "node_finished" and d.event.data.node_id == "greet"

    # An attempt whose end was never reported (its engine was lost), then the run's end.
    await _apply(store, [d for d in events if not is_greet_finished(d)], [owner])
    nodes = {n.node_id: n for n in await store.nodes(owner.run_id)}
    assert nodes["greet"].status == "stopped" and nodes["greet"].finished_at is not None
    # Its report arrives after all: its own status wins.
    await _apply(store, [d for d in events if is_greet_finished(d)], [owner])
    nodes = {n.node_id: n for n in await store.nodes(owner.run_id)}
    assert nodes["greet"].status == "succeeded"


async def test_an_attempt_started_after_the_run_ended_is_not_running(store: ExecutionStore) -> None:
    owner, events = await run_events(GREET, {"name": "Late start"})
    started = [d for d in events if d.event.event == "node_started"]
    await _apply(store, [d for d in events if d.event.event != "node_started"], [owner])
    await _apply(store, started, [owner])  # delivered late, after the run's end
    assert {n.status for n in await store.nodes(owner.run_id)} == {"succeeded"}
    extra = started[1]
    late = extra.event.model_copy(
        update={"data": extra.event.data.model_copy(update={"id": str(uuid.uuid4())}), "seq": 99}
    )
    await _apply(
        store, [Delivered(extra.workflow_id, late, late.model_dump_json().encode())], [owner]
    )
    statuses = sorted(n.status for n in await store.nodes(owner.run_id))
    assert "running" not in statuses and statuses.count("stopped") == 1


async def test_the_timeline_keeps_the_bytes_delivered(store: ExecutionStore) -> None:
    owner, events = await run_events(GREET, {"name": "Raw"})
    first = events[0]
    raw = first.payload[:-1] + b',"x_added_later":{"kept":true}}'
    await _apply(store, [Delivered(first.workflow_id, first.event, raw), *events[1:]], [owner])
    timeline = await store.timeline(owner.run_id)
    assert timeline[0].payload["x_added_later"] == {"kept": True}


async def test_applied_means_every_event_up_to_seq(store: ExecutionStore) -> None:
    owner, events = await run_events(GREET, {"name": "Seq"})
    last = len(events)
    assert not await store.applied("alice", owner.run_id, last)
    await _apply(store, [d for d in events if d.event.seq != 3], [owner])
    assert await store.applied("alice", owner.run_id, 2)
    assert not await store.applied("alice", owner.run_id, 3)
    assert not await store.applied("alice", owner.run_id, last)  # seq 3 is missing
    await _apply(store, [d for d in events if d.event.seq == 3], [owner])
    assert await store.applied("alice", owner.run_id, last)
    assert not await store.applied("mallory", owner.run_id, last)
