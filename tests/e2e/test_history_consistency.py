"""Read-after-finish consistency, pending runs, and reads under SQLite write contention, over
real HTTP against the stack `make run` starts.

Once a client has seen a run's `workflow_finished`, every read reflects it at once: the record,
its nodes, its timeline, lists filtered by status, Dify's run detail, the workflow's stats. A run
waiting for an engine is visible as `pending` with its place in the queue.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from flowstream_launcher.child_stack import child_stack

from tests.e2e.conftest import ROOT, Stack
from tests.support import GREET, delay_then_template, sse_frames

RUNS = 50
AT_ONCE = 16
# GREET with a template that streams 60 chunks: enough events per run that history has real
# work to do while the clients read.
CHATTY: dict[str, Any] = {
    **GREET,
    "nodes": [
        GREET["nodes"][0],
        {
            **GREET["nodes"][1],
            "config": {"template": "Hello {{input.name}}! " * 30, "stream": True},
        },
        GREET["nodes"][2],
    ],
}


@dataclass
class Checks:
    done: int = 0
    stale: list[str] = field(default_factory=list)
    finished_seen: int = 0

    def check(self, ok: bool, what: str) -> None:
        self.done += 1
        if not ok:
            self.stale.append(what)


async def finish_seen(client: httpx.AsyncClient, workflow_id: str, name: str) -> dict[str, Any]:
    """Stream a run until its `workflow_finished` arrives; that event."""
    url = f"/api/workflow/{workflow_id}/execute"
    async with client.stream("POST", url, json={"inputs": {"name": name}}) as response:
        assert response.status_code == 200, await response.aread()
        async for frame in sse_frames(response):
            event = frame.json()
            if event["event"] == "workflow_finished":
                return event
    raise AssertionError("the stream ended without workflow_finished")


async def read_after_finish(
    client: httpx.AsyncClient, workflow_id: str, name: str, checks: Checks
) -> None:
    end = await finish_seen(client, workflow_id, name)
    run_id, seq = end["workflow_run_id"], end["seq"]
    checks.finished_seen += 1
    seen = checks.finished_seen
    record, timeline, listed, dify, stats = await asyncio.gather(
        client.get(f"/api/executions/{run_id}"),
        client.get(f"/api/executions/{run_id}/history"),
        client.get(
            "/api/executions",
            params={"workflow_id": workflow_id, "status": "succeeded", "size": 100},
        ),
        client.get(f"/v1/workflows/run/{run_id}"),
        client.get(f"/api/workflows/{workflow_id}/stats"),
    )
    for response in (record, timeline, listed, dify, stats):
        assert response.status_code == 200, response.text
    run = record.json()
    checks.check(
        run["status"] == "succeeded"
        and run["outputs"] == end["data"]["outputs"]
        and run["last_seq"] == seq
        and run["finished_at"] is not None,
        f"record {run_id}: {run['status']} last_seq {run['last_seq']}/{seq}",
    )
    nodes = run["nodes"]
    checks.check(
        [n["node_id"] for n in nodes] == ["start", "greet", "end"]
        and {n["status"] for n in nodes} == {"succeeded"},
        f"nodes {run_id}: {[(n['node_id'], n['status']) for n in nodes]}",
    )
    entries = timeline.json()
    checks.check(
        [e["seq"] for e in entries] == list(range(1, seq + 1))
        and entries[-1]["event"] == "workflow_finished",
        f"timeline {run_id}: {len(entries)}/{seq} entries",
    )
    checks.check(
        run_id in {item["id"] for item in listed.json()["items"]},
        f"list?status=succeeded {run_id}: missing",
    )
    detail = dify.json()
    checks.check(
        detail["status"] == "succeeded" and detail["outputs"] == end["data"]["outputs"],
        f"dify detail {run_id}: {detail['status']}",
    )
    checks.check(
        stats.json()["succeeded"] >= seen, f"stats: {stats.json()['succeeded']} < {seen} seen"
    )


async def test_every_read_reflects_a_finish_a_client_has_seen(stack: Stack) -> None:
    user = f"raf-{uuid.uuid4().hex[:8]}"
    workflow_id = await stack.create_workflow(user, CHATTY)
    checks = Checks()
    gate = asyncio.Semaphore(AT_ONCE)

    async def one(i: int) -> None:
        async with gate, stack.client(user) as client:
            await read_after_finish(client, workflow_id, f"n{i}", checks)

    await asyncio.gather(*(one(i) for i in range(RUNS)))

    assert checks.done == RUNS * 6 >= 200
    assert checks.stale == [], f"{len(checks.stale)} stale reads of {checks.done}"


@pytest.fixture(scope="module")
async def one_run_at_a_time(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[Stack, Path]]:
    """A stack whose engine executes one run at a time: the others wait, pending."""
    data_dir = tmp_path_factory.mktemp("pending")
    env = {"FLOWSTREAM_ENGINE_CONCURRENCY": "1"}
    async with child_stack(data_dir, cwd=ROOT, extra_env=env) as process:
        yield Stack(process), data_dir / "history.sqlite3"


async def running(client: httpx.AsyncClient, run_id: str, node_id: str) -> None:
    """Follow the run until `node_id` has started."""
    async with client.stream("GET", f"/api/executions/{run_id}/events") as response:
        async for frame in sse_frames(response):
            if frame.data != "[DONE]":
                event = frame.json()
                if event["event"] == "node_started" and event["data"]["node_id"] == node_id:
                    return
    raise AssertionError(f"{node_id} never started")


async def test_waiting_runs_are_pending_with_their_place_in_the_queue(
    one_run_at_a_time: tuple[Stack, Path],
) -> None:
    stack, _ = one_run_at_a_time
    user = f"pend-{uuid.uuid4().hex[:8]}"
    workflow_id = await stack.create_workflow(user, delay_then_template(3))
    async with stack.client(user) as client:

        async def start() -> str:
            started = await client.post(
                "/api/executions", json={"workflow_id": workflow_id, "inputs": {"name": "q"}}
            )
            assert started.status_code == 202, started.text
            run_id: str = started.json()["id"]
            return run_id

        busy = await start()
        await running(client, busy, "wait")  # the engine's one slot is taken
        waiting = [await start() for _ in range(3)]
        pending = await client.get(
            "/api/executions", params={"workflow_id": workflow_id, "status": "pending"}
        )
        views = [(await client.get(f"/api/executions/{r}")).json() for r in waiting]
        summary = (await client.get("/api/executions/summary")).json()

    assert {item["id"] for item in pending.json()["items"]} == set(waiting)
    assert [v["status"] for v in views] == ["pending"] * 3
    positions = [v["queue_position"] for v in views]
    # An engine may already hold the next one (0: it starts as soon as its slot frees).
    assert positions == sorted(positions) and positions[-1] >= 1, positions
    assert len({p for p in positions if p > 0}) == len([p for p in positions if p > 0])
    assert summary["queue_depth"] > 0 and summary["pending_runs"] == 3, summary
    assert all(v["nodes"] == [] and v["created_at"] for v in views)


@contextmanager
def write_contention(path: Path, hold_s: float = 0.15, gap_s: float = 0.05) -> Iterator[None]:
    """Another writer on history's SQLite file, holding its write lock most of the time."""
    stop = threading.Event()

    def contend() -> None:
        db = sqlite3.connect(path, isolation_level=None, timeout=30)
        try:
            while not stop.is_set():
                db.execute("BEGIN IMMEDIATE")
                stop.wait(hold_s)
                db.execute("COMMIT")
                stop.wait(gap_s)
        finally:
            db.close()

    thread = threading.Thread(target=contend, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


async def test_reads_answer_during_heavy_sqlite_write_contention(
    one_run_at_a_time: tuple[Stack, Path],
) -> None:
    stack, database = one_run_at_a_time
    user = f"lock-{uuid.uuid4().hex[:8]}"
    workflow_id = await stack.create_workflow(user, GREET)
    statuses: list[tuple[str, int]] = []
    with write_contention(database):
        async with stack.client(user) as client:
            for i in range(20):
                end = await finish_seen(client, workflow_id, f"c{i}")
                run_id = end["workflow_run_id"]
                reads = await asyncio.gather(
                    client.get(f"/api/executions/{run_id}"),
                    client.get(f"/api/executions/{run_id}/history"),
                    client.get("/api/executions", params={"workflow_id": workflow_id}),
                    client.get(f"/v1/workflows/run/{run_id}"),
                )
                statuses += [(str(r.url), r.status_code) for r in reads]
                assert reads[0].json()["status"] == "succeeded"

    assert [s for s in statuses if s[1] != 200] == []
