"""History validates what it consumes: junk is dead-lettered, an ownerless run waits for its
owner, a stalled writer fails `/readyz` (history as its own process, on real NATS)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from flowstream_history.projection import Delivered
from flowstream_launcher.nats_server import NatsServer, free_port
from flowstream_shared import subjects
from flowstream_shared.commands import RunOwner
from flowstream_shared.history import HistoryOp, HistoryReply, RunQuery
from flowstream_shared.nats_access import Identity
from nats.aio.client import Client

from tests.history_support import run_events
from tests.integration.test_history_faults import history_process, make_runs, publish
from tests.support import GREET, history_caught_up

STALLED = b"history stalled"
RECOVERED = b"history recovered"


@pytest.fixture
async def admin(nats_server: NatsServer) -> AsyncIterator[Client]:
    client = await nats.connect(nats_server.url)
    yield client
    await client.close()


async def ask(nc: Client, op: HistoryOp, query: Any) -> HistoryReply:
    reply = await nc.request(
        subjects.history_subject(op.value), query.model_dump_json().encode(), timeout=10
    )
    return HistoryReply.model_validate_json(reply.data)


async def recorded_for(nc: Client, owner: RunOwner, seq: int, within_s: float = 30) -> Any:
    """The run as its owner reads it once history has recorded it through `seq`; each ask
    itself waits on history's writer (bounded), so this loop never sleeps."""
    query = RunQuery(user_id=owner.user_id, run_id=owner.run_id, applied_seq=seq)
    deadline = time.monotonic() + within_s
    while True:
        reply = await ask(nc, HistoryOp.GET, query)
        if reply.error is None and reply.result["run"]["last_seq"] >= seq:
            return reply.result
        if time.monotonic() > deadline:
            raise AssertionError(f"run {owner.run_id} not visible to its owner: {reply}")


def _without_user(delivered: Delivered) -> Delivered:
    """The event as a publisher that does not say who owns the run would send it."""
    payload = json.loads(delivered.payload)
    payload["data"].pop("user_id", None)
    return Delivered(delivered.workflow_id, delivered.event, json.dumps(payload).encode())


async def publish_events(nc: Client, owner: RunOwner, events: list[Delivered]) -> None:
    js = nc.jetstream()
    for delivered in events:
        run = subjects.RunAddress.of(owner.user_id, delivered.workflow_id, owner.run_id)
        await js.publish(
            run.ingest_subject(delivered.event.event.value),
            delivered.payload,
            headers={"Nats-Msg-Id": subjects.event_msg_id(owner.run_id, delivered.event.seq)},
        )


async def test_a_run_without_an_owner_is_visible_to_its_owner_once_indexed(
    nats_server: NatsServer, admin: Client, tmp_path: Path
) -> None:
    owner, events = await run_events(GREET, {"name": "Orphan"}, user_id=f"u-{uuid.uuid4().hex[:8]}")
    env = {
        "FLOWSTREAM_DATA_DIR": str(tmp_path),
        "FLOWSTREAM_HISTORY_OWNER_RETRY_S": "0.2",
        "FLOWSTREAM_HISTORY_OWNER_MAX_DELIVERIES": "100",
        "FLOWSTREAM_HISTORY_READ_WAIT_S": "0.5",
    }
    async with history_process(nats_server, env) as history:
        await publish_events(admin, owner, [_without_user(d) for d in events])
        query = RunQuery(user_id=owner.user_id, run_id=owner.run_id, applied_seq=len(events))
        missing = await ask(admin, HistoryOp.GET, query)
        assert missing.error is not None and missing.error.status == 404  # nobody's, yet
        index = await admin.jetstream().key_value(subjects.RUNS_BUCKET)
        await index.put(owner.run_id, owner.model_dump_json().encode())
        detail = await recorded_for(admin, owner, len(events))
        assert detail["run"]["status"] == "succeeded" and detail["run"]["user_id"] == owner.user_id
        assert [n["node_id"] for n in detail["nodes"]] == ["start", "greet", "end"]
        timeline = await ask(admin, HistoryOp.TIMELINE, query)
        assert [e["seq"] for e in timeline.result["entries"]] == list(range(1, len(events) + 1))
        assert not any(STALLED in line for line in history.lines)


def _junk(owner_token: str, i: int) -> tuple[str, bytes]:
    """One junk message of a kind chosen by `i`: bytes, a mismatched run, a mismatched event."""
    run_id = str(uuid.uuid4())
    address = subjects.RunAddress(owner_token, "wf-junk", run_id)
    if i % 10 == 8:
        body = {"event": "text_chunk", "workflow_run_id": str(uuid.uuid4()), "task_id": "t",
                "seq": 1, "data": {"text": "x", "from_variable_selector": ["a", "b"]}}  # fmt: skip
        return address.ingest_subject("text_chunk"), json.dumps(body).encode()
    if i % 10 == 9:
        body = {"event": "text_chunk", "workflow_run_id": run_id, "task_id": "t", "seq": 1,
                "data": {"text": "x", "from_variable_selector": ["a", "b"]}}  # fmt: skip
        return address.ingest_subject("workflow_finished"), json.dumps(body).encode()
    return address.ingest_subject("node_finished"), f"junk {i} \x00\xff".encode(errors="ignore")


async def _metrics(port: int) -> dict[str, float]:
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("flowstream_history_dead_letters_total{"):
            name, value = line.rsplit(" ", 1)
            found[name.split('reason="')[1].rstrip('"}')] = float(value)
    return found


async def _readyz(port: int) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.get(f"http://127.0.0.1:{port}/readyz")


async def test_a_junk_flood_is_dead_lettered_while_other_runs_are_recorded(
    nats_server: NatsServer, admin: Client, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        "FLOWSTREAM_DATA_DIR": str(tmp_path),
        "FLOWSTREAM_HISTORY_PORT": str(port),
        "FLOWSTREAM_HISTORY_OWNER_RETRY_S": "0.1",
        "FLOWSTREAM_HISTORY_OWNER_MAX_DELIVERIES": "2",
    }
    runs = await make_runs(20)
    victim, victim_events = runs[0]
    forged = [d for d in victim_events if d.event.event == "workflow_finished"]
    engine = await nats.connect(nats_server.auth.url_for(Identity.ENGINE, nats_server.address))
    js = admin.jetstream()
    dead_before = (await js.stream_info(subjects.DEAD_LETTER_STREAM)).state.messages
    try:
        async with history_process(nats_server, env) as history:
            token = subjects.owner_token(f"flooder-{uuid.uuid4().hex[:6]}")
            for i in range(20_000):
                await engine.publish(*_junk(token, i))
                if i == 10_000:
                    await engine.flush()
                    await publish(admin, runs[:10])
            # Well-formed events for runs nobody owns, and a forged end of another's run.
            nobody = [(str(uuid.uuid4()), d) for _, events in runs[10:12] for d in events[:3]]
            for run_id, delivered in nobody:
                address = subjects.RunAddress(token, delivered.workflow_id, run_id)
                payload = delivered.payload.replace(
                    delivered.event.workflow_run_id.encode(), run_id.encode()
                )
                await engine.publish(address.ingest_subject(delivered.event.event.value), payload)
            for delivered in forged:
                address = subjects.RunAddress(token, delivered.workflow_id, victim.run_id)
                await engine.publish(address.ingest_subject("workflow_finished"), delivered.payload)
            await engine.flush()
            await publish(admin, runs[10:])
            await history_caught_up(nats_server.url, within_s=90)

            for owner, events in runs:
                detail = await recorded_for(admin, owner, len(events))
                assert detail["run"]["status"] == "succeeded"
            dead = await _metrics(port)
            assert dead == {
                "unparseable": 16_000,
                "run_mismatch": 2_000,
                "event_mismatch": 2_000,
                "owner_mismatch": 1,
                "owner_unknown": len(nobody),
            }
            stored = (await js.stream_info(subjects.DEAD_LETTER_STREAM)).state.messages
            assert stored - dead_before == sum(dead.values())
            ready = await _readyz(port)
            assert ready.status_code == 204, ready.text
            assert not any(STALLED in line for line in history.lines)
        sample = await js.get_last_msg(
            subjects.DEAD_LETTER_STREAM, subjects.dead_letter_subject("history")
        )
        headers = sample.headers or {}
        assert headers["Flowstream-Reason"] in dead
        assert headers["Flowstream-Subject"].startswith(f"{subjects.EVENTS_PREFIX}.{token}.")
        assert int(headers["Flowstream-Stream-Sequence"]) > 0
    finally:
        await engine.close()


class _Lock:
    """Another connection holding the SQLite file's write lock, until released."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._held = threading.Event()
        self._release = threading.Event()
        self._thread = threading.Thread(target=self._hold, daemon=True)

    def _hold(self) -> None:
        db = sqlite3.connect(self._path, isolation_level=None)
        db.execute("BEGIN EXCLUSIVE")
        self._held.set()
        self._release.wait()
        db.execute("ROLLBACK")
        db.close()

    async def __aenter__(self) -> _Lock:
        self._thread.start()
        await asyncio.to_thread(self._held.wait)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._release.set()
        await asyncio.to_thread(self._thread.join)


async def test_readyz_fails_while_the_writer_is_stalled_and_recovers(
    nats_server: NatsServer, admin: Client, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        "FLOWSTREAM_DATA_DIR": str(tmp_path),
        "FLOWSTREAM_HISTORY_PORT": str(port),
        "FLOWSTREAM_HISTORY_STALL_S": "1",
    }
    before, during = await make_runs(1), await make_runs(2)
    async with history_process(nats_server, env) as history:
        await publish(admin, before)
        await recorded_for(admin, before[0][0], len(before[0][1]))
        assert (await _readyz(port)).status_code == 204
        async with _Lock(tmp_path / "history.sqlite3"):
            await publish(admin, during)
            await history.logged(STALLED)
            stalled = await _readyz(port)
            assert stalled.status_code == 503
            assert "without a successful write" in stalled.json()["problems"][0]
        await history.logged(RECOVERED)
        assert (await _readyz(port)).status_code == 204
        for owner, events in during:
            await recorded_for(admin, owner, len(events))
