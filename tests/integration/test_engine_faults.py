"""Runs under faults, against a real JetStream: hand-overs, duplicate deliveries, stale attempts.

A local HTTP peer counts the calls each run's API_CALL nodes make, so a node executed twice is
seen where it matters — at the peer — not only in the event log.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from flowstream_launcher.nats_server import NatsServer
from flowstream_shared import subjects
from nats.aio.client import Client

from tests.e2e.peers import Peer, http_peer
from tests.integration.conftest import EngineFactory, command, submit
from tests.support import read_run_log, run_events


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    async with http_peer() as serving:
        yield serving


def call_wait_call(peer: Peer, key: str, seconds: float) -> dict[str, Any]:
    """START → API_CALL `before` → DELAY → API_CALL `after` → END."""

    def call(node_id: str) -> dict[str, Any]:
        return {
            "id": node_id,
            "type": "API_CALL",
            "config": {"method": "POST", "url": f"{peer.url}/echo/{key}-{node_id}"},
        }

    return {
        "name": f"calls-{key}",
        "nodes": [
            {"id": "start", "type": "START", "config": {"inputs": []}},
            call("before"),
            {"id": "wait", "type": "DELAY", "config": {"seconds": seconds}},
            call("after"),
            {"id": "end", "type": "END", "config": {"outputs": {"ok": "{{after.status_code}}"}}},
        ],
        "connections": [
            {"from": "start", "to": "before"},
            {"from": "before", "to": "wait"},
            {"from": "wait", "to": "after"},
            {"from": "after", "to": "end"},
        ],
    }


def calls(peer: Peer, key: str, node_id: str) -> int:
    return len(peer.received(f"/echo/{key}-{node_id}"))


async def node_started(nc: Client, run_id: str, node_id: str) -> None:
    sub = await nc.subscribe(run_events(run_id)[:-1] + "node_started")
    try:
        while json.loads((await sub.next_msg(timeout=20)).data)["data"]["node_id"] != node_id:
            pass
    finally:
        await sub.unsubscribe()


def assert_one_clean_run(events: list[dict[str, Any]]) -> dict[str, Any]:
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), "gap or duplicate"
    names = [e["event"] for e in events]
    assert names.count("workflow_started") == 1
    assert names.count("workflow_finished") == 1 and names[-1] == "workflow_finished"
    finished: dict[str, Any] = events[-1]["data"]
    return finished


async def test_a_handed_over_run_never_repeats_a_finished_node(
    nats_server: NatsServer, nc: Client, start_engine: EngineFactory, peer: Peer
) -> None:
    key = uuid.uuid4().hex[:8]
    first = await start_engine()
    cmd = command(call_wait_call(peer, key, 1.5), {})
    await submit(nc, cmd)
    await node_started(nc, cmd.run_id, "wait")
    await first.stop()  # mid-DELAY: `before` has finished, `after` has not started
    await start_engine()

    finished = assert_one_clean_run(await read_run_log(nats_server.url, cmd.run_id))

    assert finished["status"] == "succeeded"
    assert calls(peer, key, "before") == 1, "a finished node ran again after the hand-over"
    assert calls(peer, key, "after") == 1


async def test_an_interrupted_node_is_reported_stopped_before_it_runs_again(
    nats_server: NatsServer, nc: Client, start_engine: EngineFactory, peer: Peer
) -> None:
    key = uuid.uuid4().hex[:8]
    first = await start_engine()
    cmd = command(call_wait_call(peer, key, 1.5), {})
    await submit(nc, cmd)
    await node_started(nc, cmd.run_id, "wait")
    await first.stop()
    await start_engine()

    events = await read_run_log(nats_server.url, cmd.run_id)

    waits = [e["data"] for e in events if e["data"].get("node_id") == "wait"]
    kinds = [(w.get("status"), w["id"]) for w in waits]
    assert len({execution for _, execution in kinds}) == 2, "the DELAY ran once more"
    first_try = [w for w in waits if w["id"] == waits[0]["id"]]
    assert [w.get("status") for w in first_try] == [None, "stopped"]
    assert "interrupted" in first_try[-1]["error"]


async def test_a_second_delivery_of_a_running_command_does_not_execute_it_again(
    nats_server: NatsServer, nc: Client, start_engine: EngineFactory, peer: Peer
) -> None:
    await start_engine()
    await start_engine()
    key = uuid.uuid4().hex[:8]
    cmd = command(call_wait_call(peer, key, 1.0), {})
    await submit(nc, cmd)
    await node_started(nc, cmd.run_id, "wait")
    # The same command again, as a resubmission or a redelivery after a crash would bring it.
    await nc.jetstream().publish(
        cmd.subject,
        cmd.model_dump_json().encode(),
        headers={"Nats-Msg-Id": f"{cmd.run_id}:again"},
    )

    finished = assert_one_clean_run(await read_run_log(nats_server.url, cmd.run_id))

    assert finished["status"] == "succeeded"
    assert (calls(peer, key, "before"), calls(peer, key, "after")) == (1, 1)
    info = await nc.jetstream().consumer_info(
        subjects.RUNS_STREAM, subjects.band_consumer(cmd.priority)
    )
    async with asyncio.timeout(20):  # the duplicate is acknowledged once the run has ended
        while info.num_ack_pending or info.num_pending:
            await asyncio.sleep(0.2)
            info = await nc.jetstream().consumer_info(
                subjects.RUNS_STREAM, subjects.band_consumer(cmd.priority)
            )


async def test_an_attempt_that_lost_its_claim_cannot_add_to_the_log(
    nats_server: NatsServer, nc: Client, start_engine: EngineFactory, peer: Peer
) -> None:
    await start_engine()
    key = uuid.uuid4().hex[:8]
    cmd = command(call_wait_call(peer, key, 1.0), {})
    await submit(nc, cmd)
    await node_started(nc, cmd.run_id, "wait")
    js = nc.jetstream()
    latest = await js.get_last_msg(subjects.EVENTS_STREAM, subjects.claim_subject(cmd.run_id))
    # Another attempt claims the run mid-DELAY; the engine running it must stop adding to it.
    await js.publish(
        subjects.claim_subject(cmd.run_id),
        b'{"engine": "test"}',
        headers={"Nats-Expected-Last-Subject-Sequence": str(latest.seq)},
    )

    # The command comes back once the fenced attempt's lease lapses; the next attempt resumes.
    finished = assert_one_clean_run(await read_run_log(nats_server.url, cmd.run_id))

    assert finished["status"] == "succeeded"
    assert calls(peer, key, "before") == 1
    assert calls(peer, key, "after") == 1


async def test_a_stopping_engine_hands_its_runs_over_at_once(
    nats_server: NatsServer, nc: Client, start_engine: EngineFactory, peer: Peer
) -> None:
    key = uuid.uuid4().hex[:8]
    first = await start_engine()
    cmd = command(call_wait_call(peer, key, 30.0), {})
    await submit(nc, cmd)
    await node_started(nc, cmd.run_id, "wait")  # on the first engine: the only one yet
    await start_engine()  # idle: takes over what the first hands back
    resumed = await nc.subscribe(run_events(cmd.run_id)[:-1] + "node_finished")
    stopped_at = asyncio.get_running_loop().time()
    await first.stop()  # mid-DELAY: the command is handed back (nak), not left to time out
    interrupted = json.loads((await resumed.next_msg(timeout=20)).data)["data"]
    waited = asyncio.get_running_loop().time() - stopped_at
    assert interrupted["node_id"] == "wait" and interrupted["status"] == "stopped"
    assert waited < 5.0, f"the run resumed {waited:.1f}s after its engine stopped"
