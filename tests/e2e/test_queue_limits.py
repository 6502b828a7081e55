"""Concurrency limits and the result cache, over the whole stack (ADR 0036, 0037)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.e2e.conftest import Stack
from tests.e2e.peers import Peer, http_peer
from tests.e2e.queue_support import delay_workflow, owner_feed, start_run
from tests.support import sse_frames
from tests.unit.builders import api_call, chain, end, field, start

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def peer() -> AsyncIterator[Peer]:
    async with http_peer() as serving:
        yield serving


async def test_a_workflow_limit_of_two_keeps_two_running_and_the_rest_pending_in_order(
    stack: Stack,
) -> None:
    user = f"limit-{uuid.uuid4().hex[:6]}"
    workflow_id = await stack.create_workflow(user, delay_workflow(0.6, {"max_concurrent_runs": 2}))
    async with owner_feed(stack, user) as feed, stack.client(user) as client:
        runs = [(await start_run(client, workflow_id, inputs={"n": i}))["id"] for i in range(6)]
        await feed.until(lambda _: len(feed.started_order(runs)) == 2)
        queue = (await client.get("/api/queue")).json()["items"]
        waiting = [item for item in queue if item["id"] in runs]
        # The four others wait for the limit, in the order they were submitted.
        assert [item["id"] for item in waiting] == runs[2:]
        assert [item["position"] for item in waiting] == [1, 2, 3, 4]
        assert {item["waiting_for"] for item in waiting} == {
            f"max_concurrent_runs of workflow {workflow_id}"
        }
        assert all(item["status"] == "pending" for item in waiting)
        detail = (await client.get(f"/api/executions/{runs[3]}")).json()
        assert (detail["status"], detail["position"], detail["nodes"]) == ("pending", 2, [])
        await feed.until(lambda _: feed.finished(runs))
    # Two slots free together, so runs start in pairs, in the order they were submitted (two
    # runs given their slots in the same instant may report their start either way round).
    order = feed.started_order(runs)
    assert [set(order[i : i + 2]) for i in (0, 2, 4)] == [set(runs[i : i + 2]) for i in (0, 2, 4)]
    assert feed.most_running_at_once(runs) == 2
    statuses = {e["data"]["status"] for e in feed.of("workflow_finished")}
    assert statuses == {"succeeded"}


async def test_runs_with_the_same_concurrency_key_take_turns_and_others_do_not_wait(
    stack: Stack,
) -> None:
    user = f"ckey-{uuid.uuid4().hex[:6]}"
    definition = delay_workflow(
        0.4, {"concurrency_key": "{{input.customer}}", "concurrency_limit": 1}
    )
    definition["nodes"][0]["config"]["inputs"].append({"name": "customer", "type": "string"})
    workflow_id = await stack.create_workflow(user, definition)
    async with owner_feed(stack, user) as feed, stack.client(user) as client:
        acme = [
            (await start_run(client, workflow_id, inputs={"customer": "acme"}))["id"]
            for _ in range(3)
        ]
        other = (await start_run(client, workflow_id, inputs={"customer": "globex"}))["id"]
        await feed.until(lambda _: feed.finished([*acme, other]))
    assert feed.most_running_at_once(acme) == 1
    # globex's run never waited behind acme's: it started before acme's second one.
    order = feed.started_order([*acme, other])
    assert order.index(other) < order.index(acme[1])


def _cached_workflow(peer: Peer, key: str) -> dict[str, Any]:
    call = api_call(
        "call",
        f"{peer.url}/echo/{key}",
        method="POST",
        body={"q": "{{input.q}}"},
        outputs={"echoed": "{{response.body.json}}"},
    )
    return {
        "name": f"cached-{key}",
        "config": {"cache": {"ttl": 300}},
        "nodes": [start(field("q")), call, end(answer="{{call.echoed}}")],
        "connections": chain("start", "call", "end"),
    }


async def _stream(stack: Stack, user: str, workflow_id: str, body: dict[str, Any]) -> list[Any]:
    async with (
        stack.client(user) as client,
        client.stream("POST", f"/api/workflow/{workflow_id}/execute", json=body) as response,
    ):
        assert response.status_code == 200
        frames = [frame async for frame in sse_frames(response)]
    assert frames[-1].data == "[DONE]"
    return [frame.json() for frame in frames[:-1]]


async def test_a_cache_hit_answers_the_same_outputs_without_running_a_node(
    stack: Stack, peer: Peer
) -> None:
    user = f"cache-{uuid.uuid4().hex[:6]}"
    key = uuid.uuid4().hex[:12]
    workflow_id = await stack.create_workflow(user, _cached_workflow(peer, key))
    body = {"inputs": {"q": "same"}, "response_mode": "blocking"}
    async with stack.client(user) as client:
        first = (await client.post(f"/api/workflow/{workflow_id}/execute", json=body)).json()
        second = (await client.post(f"/api/workflow/{workflow_id}/execute", json=body)).json()
    assert first["data"]["outputs"] == second["data"]["outputs"] == {"answer": {"q": "same"}}
    assert second["workflow_run_id"] != first["workflow_run_id"]
    assert len(peer.received(f"/echo/{key}")) == 1  # the second run executed nothing

    # Streamed, a hit replays the original's events under its own run id, marked cached.
    events = await _stream(stack, user, workflow_id, {"inputs": {"q": "same"}})
    assert len(peer.received(f"/echo/{key}")) == 1
    run_id = events[0]["workflow_run_id"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert {e["workflow_run_id"] for e in events} == {run_id}
    assert events[0]["data"]["cached"] is True
    assert events[0]["data"]["cached_from"] == first["workflow_run_id"]
    assert events[-1]["data"]["cached"] is True
    assert events[-1]["data"]["outputs"] == {"answer": {"q": "same"}}
    assert [e["data"]["node_id"] for e in events if e["event"] == "node_finished"] == [
        "start",
        "call",
        "end",
    ]
    async with stack.client(user) as client:
        timeline = (await client.get(f"/api/executions/{run_id}/history")).json()
    recorded = timeline["items"] if isinstance(timeline, dict) else timeline
    assert any(item.get("event") == "workflow_finished" for item in recorded)


async def test_cache_false_and_other_inputs_execute_and_the_cache_is_per_owner(
    stack: Stack, peer: Peer
) -> None:
    key = uuid.uuid4().hex[:12]
    owner, stranger = f"cache-{uuid.uuid4().hex[:6]}", f"cache-{uuid.uuid4().hex[:6]}"
    definition = _cached_workflow(peer, key)
    mine = await stack.create_workflow(owner, definition)
    body = {"inputs": {"q": "a"}, "response_mode": "blocking"}
    async with stack.client(owner) as client:
        await client.post(f"/api/workflow/{mine}/execute", json=body)
        await client.post(f"/api/workflow/{mine}/execute", json={**body, "cache": False})
        other = {"inputs": {"q": "b"}, "response_mode": "blocking"}
        await client.post(f"/api/workflow/{mine}/execute", json=other)
        # Started through /api/executions too: still answered from the cache.
        cached = await start_run(client, mine, inputs={"q": "a"})
    assert cached["cached"] is True
    assert len(peer.received(f"/echo/{key}")) == 3
    theirs = await stack.create_workflow(stranger, definition)
    async with stack.client(stranger) as client:
        await client.post(f"/api/workflow/{theirs}/execute", json=body)
    assert len(peer.received(f"/echo/{key}")) == 4
