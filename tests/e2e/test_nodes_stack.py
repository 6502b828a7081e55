"""LOOP, PARALLEL, `on_error` branches and API_CALL over the whole stack: HTTP in, SSE out."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import Stack
from tests.support import sse_frames


def node(node_id: str, node_type: str, config: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "type": node_type, "config": config, **extra}


def link(source: str, target: str, kind: str = "SEQUENCE") -> dict[str, Any]:
    return {"from": source, "to": target, "type": kind}


def everything(gateway_url: str) -> dict[str, Any]:
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
                {"url": f"{gateway_url}/healthz", "outputs": {"state": "{{response.body.status}}"}},
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
async def test_every_new_node_type_runs_over_the_stack(stack: Stack) -> None:
    workflow_id = await stack.create_workflow("nodes-user", everything(stack.base_url))
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
        "health": "ok",
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
