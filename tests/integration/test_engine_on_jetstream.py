"""The engine against a real JetStream: numbering, dedupe, shared work, control and resume."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from flowstream_launcher.nats_server import NatsServer
from flowstream_shared import subjects
from flowstream_shared.commands import ControlAction, ControlCommand
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy

from tests.integration.conftest import EngineFactory, command, submit
from tests.support import GREET, delay_then_template, read_run_log, run_events


async def _wait_for_node_start(client: Client, cmd_run_id: str, node_id: str) -> None:
    sub = await client.subscribe(run_events(cmd_run_id)[:-1] + "node_started")
    try:
        while True:
            msg = await sub.next_msg(timeout=20)
            if json.loads(msg.data)["data"]["node_id"] == node_id:
                return
    finally:
        await sub.unsubscribe()


def _finished(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["data"] for e in events if e["event"] == "workflow_finished"]


async def test_events_are_numbered_gap_free_and_carry_their_msg_id(
    nats_server: NatsServer, nc: Client, start_engine: EngineFactory
) -> None:
    await start_engine()
    cmd = command(GREET, {"name": "Ada"})
    await submit(nc, cmd)
    events = await read_run_log(nats_server.url, cmd.run_id)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))

    js = nc.jetstream()
    run = subjects.RunAddress.of(cmd.user_id, cmd.workflow.workflow_id, cmd.run_id)
    sub = await js.subscribe(
        run.events_filter,
        stream=subjects.EVENTS_STREAM,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
    )
    first = await sub.next_msg(timeout=5)
    await sub.unsubscribe()
    assert first.subject == run.event_subject("workflow_started")
    assert first.headers is not None
    assert first.headers["Nats-Msg-Id"] == f"{cmd.run_id}:1"

    # A retried publish of a stored event is dropped by the stream.
    before = (await js.stream_info(subjects.EVENTS_STREAM)).state.last_seq
    ack = await js.publish(
        run.ingest_subject("workflow_started"),
        first.data,
        headers={"Nats-Msg-Id": f"{cmd.run_id}:1"},
    )
    assert ack.duplicate
    assert (await js.stream_info(subjects.EVENTS_STREAM)).state.last_seq == before


async def test_two_engines_share_the_queue_and_run_each_command_once(
    nats_server: NatsServer, nc: Client, start_engine: EngineFactory
) -> None:
    await start_engine()
    await start_engine()
    # Every command is acknowledged once its run has ended (the queue is shared with other
    # tests' leftovers, so its totals say nothing): watch the acknowledgements themselves.
    acks = await nc.subscribe(f"$JS.ACK.{subjects.RUNS_STREAM}.>")
    commands = [command(GREET, {"name": f"n{i}"}) for i in range(20)]
    queued = {await submit(nc, cmd) for cmd in commands}
    logs = await asyncio.gather(*(read_run_log(nats_server.url, c.run_id) for c in commands))
    for cmd, events in zip(commands, logs, strict=True):
        assert [e["event"] for e in events].count("workflow_started") == 1
        assert _finished(events) == [_finished(events)[0]]
        assert _finished(events)[0]["outputs"] == {"answer": f"Hello {cmd.inputs['name']}!"}
    acked: set[int] = set()
    async with asyncio.timeout(20):
        while not queued <= acked:
            ack = await acks.next_msg(timeout=20)
            if ack.data in (b"", b"+ACK"):  # nats-py acknowledges with an empty body
                acked.add(Msg(nc, reply=ack.subject).metadata.sequence.stream)
    await acks.unsubscribe()


async def _cancel(client: Client, run_id: str, kv: bool, core: bool) -> None:
    payload = ControlCommand(action=ControlAction.CANCEL, reason="test").model_dump_json().encode()
    if kv:
        store = await client.jetstream().key_value(subjects.CONTROL_BUCKET)
        await store.put(run_id, payload)
    if core:
        await client.publish(subjects.control_subject(run_id), payload)


@pytest.mark.parametrize(
    ("kv", "core"),
    [(True, False), (False, True)],
    ids=["the KV flag alone", "the core message alone"],
)
async def test_either_control_path_alone_stops_a_run(
    nats_server: NatsServer, nc: Client, start_engine: EngineFactory, kv: bool, core: bool
) -> None:
    await start_engine()
    cmd = command(delay_then_template(60), {})
    await submit(nc, cmd)
    await _wait_for_node_start(nc, cmd.run_id, "wait")
    await _cancel(nc, cmd.run_id, kv=kv, core=core)
    events = await read_run_log(nats_server.url, cmd.run_id)
    assert [f["status"] for f in _finished(events)] == ["stopped"]
    assert all(e["data"].get("node_id") != "after" for e in events if e["event"] == "node_started")


async def test_a_run_cancelled_before_it_starts_never_waits(
    nats_server: NatsServer, nc: Client, start_engine: EngineFactory
) -> None:
    cmd = command(delay_then_template(60), {})
    await _cancel(nc, cmd.run_id, kv=True, core=False)
    await start_engine()
    await submit(nc, cmd)
    events = await read_run_log(nats_server.url, cmd.run_id)
    assert [f["status"] for f in _finished(events)] == ["stopped"]
    assert all(e["data"].get("node_id") != "after" for e in events if e["event"] == "node_started")


async def test_a_command_past_its_deadline_ends_failed_at_once(
    nats_server: NatsServer, nc: Client, start_engine: EngineFactory
) -> None:
    await start_engine()
    cmd = command(delay_then_template(60), {}, timeout=-1)
    await submit(nc, cmd)
    events = await read_run_log(nats_server.url, cmd.run_id)
    finished = _finished(events)
    assert len(finished) == 1 and finished[0]["status"] == "failed"
    assert "timed out" in finished[0]["error"]


async def test_a_run_handed_over_by_a_stopping_engine_resumes_from_its_log(
    nats_server: NatsServer, nc: Client, start_engine: EngineFactory
) -> None:
    first = await start_engine()
    cmd = command(delay_then_template(1.0), {"name": "Ada"})
    await submit(nc, cmd)
    await _wait_for_node_start(nc, cmd.run_id, "wait")
    await first.stop()  # mid-DELAY: the command goes back to the queue
    await start_engine()
    events = await read_run_log(nats_server.url, cmd.run_id)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["event"] for e in events].count("workflow_started") == 1
    started = [e["data"]["node_id"] for e in events if e["event"] == "node_started"]
    assert started.count("start") == 1  # finished before the handover: not run again
    assert started.count("after") == 1
    finished = _finished(events)
    assert len(finished) == 1 and finished[0]["status"] == "succeeded"
    assert finished[0]["outputs"] == {"message": "done"}


async def test_engine_concurrency_bounds_the_runs_one_engine_executes(
    nats_server: NatsServer, nc: Client, start_engine: EngineFactory
) -> None:
    await start_engine(concurrency=2)
    commands = [command(delay_then_template(0.3), {}) for _ in range(4)]
    ours = {c.run_id for c in commands}
    arrivals: list[tuple[str, str]] = []
    all_finished = asyncio.Event()

    async def record(msg: Msg) -> None:
        address = subjects.parse_event_subject(msg.subject)
        assert address is not None
        run_id, event = address.run.run_id, address.event
        if run_id in ours and event in ("workflow_started", "workflow_finished"):
            arrivals.append((event, run_id))
            if sum(e == "workflow_finished" for e, _ in arrivals) == len(ours):
                all_finished.set()

    subscription = await nc.subscribe("flowstream.events.>", cb=record)
    try:
        for cmd in commands:
            await submit(nc, cmd)
        await asyncio.wait_for(all_finished.wait(), timeout=30)
    finally:
        await subscription.unsubscribe()
    in_flight, most = 0, 0
    for event, _ in arrivals:
        in_flight += 1 if event == "workflow_started" else -1
        most = max(most, in_flight)
    assert most == 2, arrivals


async def test_a_burst_of_commands_is_picked_up_in_a_few_asks(
    nats_server: NatsServer, nc: Client, start_engine: EngineFactory
) -> None:
    commands = [command(GREET, {"name": f"n{i}"}) for i in range(24)]
    for cmd in commands:
        await submit(nc, cmd)  # queued before any engine is there
    asks = await nc.subscribe(f"$JS.API.CONSUMER.MSG.NEXT.{subjects.RUNS_STREAM}.>")
    await start_engine(concurrency=32)
    logs = await asyncio.gather(*(read_run_log(nats_server.url, c.run_id) for c in commands))
    await asks.unsubscribe()

    assert all(_finished(events)[0]["status"] == "succeeded" for events in logs)
    # One ask per band to find them, a few more as slots free up: never one per command.
    assert asks.delivered < len(commands), f"{asks.delivered} asks for {len(commands)} commands"
