"""LOOP, PARALLEL, `on_error` branches and API_CALL over the whole stack: HTTP in, SSE out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.e2e.conftest import Stack
from tests.e2e.peers import Peer, http_peer
from tests.support import sse_frames


@pytest.fixture(scope="module")
async def peer() -> AsyncIterator[Peer]:
    # The probe calls a peer: the stack's own ports are refused to workflows (egress policy).
    async with http_peer() as serving:
        yield serving


def node(node_id: str, node_type: str, config: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "type": node_type, "config": config, **extra}


def link(source: str, target: str, kind: str = "SEQUENCE") -> dict[str, Any]:
    return {"from": source, "to": target, "type": kind}


def everything(peer_url: str) -> dict[str, Any]:
    """START → rep (LOOP, 2 rounds: fan → a | b → join) → probe (API_CALL) → risky, whose
    `on_error` branches to fallback → end."""
    return {
        "name": "all-node-types",
        "nodes": [
            node("start", "START", {"inputs": [{"name": "who", "type": "string"}]}),
            node("rep", "LOOP", {"max_iterations": 2}),
            node("fan", "PARALLEL", {"max_concurrent": 2}),
            node("a", "TEMPLATE", {"template": "a{{loop.index}}"}),
            node("b", "TEMPLATE", {"template": "b{{loop.index}}"}),
            node("join", "TEMPLATE", {"template": "{{a.text}}{{b.text}}"}),
            node(
                "probe",
                "API_CALL",
                {"url": f"{peer_url}/echo/probe", "outputs": {"state": "{{response.body.method}}"}},
            ),
            node("risky", "TEMPLATE", {"template": "{{input.who.name}}"}, on_error="fallback"),
            node("fallback", "TEMPLATE", {"template": "no name"}),
            node(
                "end",
                "END",
                {
                    "outputs": {
                        "loops": "{{rep.iterations}}",
                        "last": "{{join.text}}",
                        "health": "{{probe.state}}",
                        "who": "{{fallback.text}}",
                    }
                },
            ),
        ],
        "connections": [
            link("start", "rep"),
            link("rep", "fan", "LOOP"),
            link("fan", "a", "PARALLEL"),
            link("fan", "b", "PARALLEL"),
            link("a", "join"),
            link("b", "join"),
            link("join", "rep"),
            link("rep", "probe"),
            link("probe", "risky"),
            link("fallback", "end"),
        ],
    }


@pytest.mark.e2e
async def test_every_new_node_type_runs_over_the_stack(stack: Stack, peer: Peer) -> None:
    workflow_id = await stack.create_workflow("nodes-user", everything(peer.url))
    async with (
        stack.client("nodes-user") as client,
        client.stream(
            "POST", f"/api/workflow/{workflow_id}/execute", json={"inputs": {"who": "Ada"}}
        ) as response,
    ):
        assert response.status_code == 200
        events = [f.json() for f in [f async for f in sse_frames(response)][:-1]]

    names = [e["event"] for e in events]
    assert names.count("loop_started") == 1
    assert names.count("loop_next") == 1
    assert names.count("loop_completed") == 1
    assert names.count("parallel_branch_started") == 4
    assert names.count("parallel_branch_finished") == 4
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    finished = events[-1]
    assert finished["event"] == "workflow_finished"
    assert finished["data"]["status"] == "partial-succeeded", finished["data"]["error"]
    assert finished["data"]["outputs"] == {
        "loops": 2,
        "last": "a1b1",
        "health": "GET",
        "who": "no name",
    }


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("change", "node_id", "words"),
    [
        ("cycle", "a", "cycle"),  # join → a closes a cycle inside the body
        ("unbounded", "rep", "max_iterations"),
        ("file_url", "probe", "http or https"),
        ("no_branches", "fan", "PARALLEL"),
        ("loop_index_outside", "probe", "loop"),
    ],
)
async def test_bad_definitions_are_a_400_naming_the_node(
    stack: Stack, change: str, node_id: str, words: str
) -> None:
    definition = everything(stack.base_url)
    nodes = {n["id"]: n for n in definition["nodes"]}
    if change == "cycle":
        definition["connections"].append(link("join", "a"))
    elif change == "unbounded":
        del nodes["rep"]["config"]["max_iterations"]
    elif change == "file_url":
        nodes["probe"]["config"]["url"] = "file:///etc/passwd"
    elif change == "no_branches":
        definition["connections"] = [
            c for c in definition["connections"] if c["type"] != "PARALLEL"
        ] + [link("fan", "join")]
    elif change == "loop_index_outside":
        nodes["probe"]["config"]["url"] = f"{stack.base_url}/healthz?i={{{{loop.index}}}}"

    async with stack.client("nodes-user") as client:
        response = await client.post("/api/workflows", json=definition)

    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "invalid_param"
    assert f"`{node_id}`" in body["message"]
    assert words in body["message"]


def draft_with(*nodes: dict[str, Any]) -> dict[str, Any]:
    """START and `nodes`, nothing connected: only a draft can be stored like this."""
    return {
        "name": "step-by-step",
        "nodes": [node("start", "START", {"inputs": []}), *nodes],
        "connections": [],
    }


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("connection", "node_id", "words"),
    [
        (link("fan", "a"), "fan", "a PARALLEL's outgoing connections are its branches"),
        (link("fan", "a", "LOOP"), "fan", "must be PARALLEL, not LOOP"),
        (link("start", "a", "PARALLEL"), "start", "PARALLEL connections go out of PARALLEL"),
        (link("start", "a", "LOOP"), "start", "LOOP connections go out of LOOP nodes only"),
        (link("a", "rep", "PARALLEL"), "a", "PARALLEL connections go out of PARALLEL"),
        (link("rep", "a", "PARALLEL"), "rep", "PARALLEL connections go out of PARALLEL"),
        (link("rep", "a", "CONDITIONAL_TRUE"), "rep", "go out of CONDITION nodes only"),
    ],
)
async def test_a_bad_parallel_or_loop_connection_added_step_by_step_is_a_400(
    stack: Stack, connection: dict[str, Any], node_id: str, words: str
) -> None:
    user = "steps-user"
    draft = draft_with(
        node("fan", "PARALLEL", {"max_concurrent": 1}),
        node("rep", "LOOP", {"max_iterations": 2}),
        node("a", "TEMPLATE", {"template": "a"}),
    )
    async with stack.client(user) as client:
        created = await client.post("/api/workflows", params={"draft": "true"}, json=draft)
        assert created.status_code == 201, created.text
        workflow_id = created.json()["id"]

        response = await client.post(f"/api/workflows/{workflow_id}/connections", json=connection)

        assert response.status_code == 400, response.text
        body = response.json()
        assert body["code"] == "invalid_param"
        assert body["message"].startswith(f"node `{node_id}`: ")
        assert words in body["message"]
        stored = (await client.get(f"/api/workflows/{workflow_id}")).json()
        assert stored["version"] == 1 and stored["definition"]["connections"] == []


@pytest.mark.e2e
async def test_parallel_and_loop_connections_added_step_by_step_make_a_runnable_workflow(
    stack: Stack,
) -> None:
    """The step check accepts every connection a sound PARALLEL and LOOP need, including the
    LOOP's SEQUENCE exit and the body's connection back to the LOOP."""
    user = "steps-user"
    steps = [
        link("start", "rep"),
        link("rep", "fan", "LOOP"),
        link("fan", "a", "PARALLEL"),
        link("fan", "b", "PARALLEL"),
        link("a", "join"),
        link("b", "join"),
        link("join", "rep"),
        link("rep", "end"),
    ]
    draft = draft_with(
        node("rep", "LOOP", {"max_iterations": 2}),
        node("fan", "PARALLEL", {"max_concurrent": 1}),
        node("a", "TEMPLATE", {"template": "a{{loop.index}}"}),
        node("b", "TEMPLATE", {"template": "b{{loop.index}}"}),
        node("join", "TEMPLATE", {"template": "{{a.text}}{{b.text}}"}),
        node("end", "END", {"outputs": {"last": "{{join.text}}"}}),
    )
    async with stack.client(user) as client:
        created = await client.post("/api/workflows", params={"draft": "true"}, json=draft)
        assert created.status_code == 201, created.text
        workflow_id = created.json()["id"]
        for number, step in enumerate(steps, start=2):
            added = await client.post(f"/api/workflows/{workflow_id}/connections", json=step)
            assert added.status_code == 201, (step, added.text)
            assert added.json()["draft"] is (number < len(steps) + 1), added.json()["problems"]

        result = await client.post(
            f"/api/workflow/{workflow_id}/execute",
            json={"inputs": {}, "response_mode": "blocking"},
        )
    assert result.status_code == 200, result.text
    assert result.json()["data"]["status"] == "succeeded", result.json()["data"]["error"]
    assert result.json()["data"]["outputs"] == {"last": "a1b1"}
