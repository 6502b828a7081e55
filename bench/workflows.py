"""The workflows the benchmark runs, and storing them through the gateway."""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx

from bench import wrk
from bench.settings import ROOT

# START → streaming TEMPLATE → END: the `greet` example, as `make run` loads it.
THREE_STEP: dict[str, Any] = json.loads((ROOT / "examples" / "greet.json").read_text())
INPUTS: dict[str, object] = {"inputs": {"name": "bench"}}

CHAIN_NODES = 1_000  # START, 998 TEMPLATE nodes, END
LONG_DELAY_S = 3_600.0


def chain(nodes: int = CHAIN_NODES) -> dict[str, Any]:
    """START → (nodes - 2) plain TEMPLATE nodes, each reading its predecessor → END."""
    templates = [
        {
            "id": f"t{i}",
            "type": "TEMPLATE",
            "name": f"T{i}",
            "config": {"template": "{{input.name}}" if i == 1 else f"{{{{t{i - 1}.text}}}}"},
        }
        for i in range(1, nodes - 1)
    ]
    ids = ["start", *(t["id"] for t in templates), "end"]
    last = templates[-1]["id"]
    return {
        "name": f"chain-{nodes}",
        "description": "benchmark: per-node overhead",
        "config": {"timeout": 600, "retry_count": 0},
        "nodes": [
            {
                "id": "start",
                "type": "START",
                "name": "Start",
                "config": {"inputs": [{"name": "name", "type": "string", "required": True}]},
            },
            *templates,
            {
                "id": "end",
                "type": "END",
                "name": "End",
                "config": {"outputs": {"answer": f"{{{{{last}.text}}}}"}},
            },
        ],
        "connections": [{"from": a, "to": b} for a, b in itertools.pairwise(ids)],
    }


def long_delay(seconds: float = LONG_DELAY_S) -> dict[str, Any]:
    """START → DELAY → END: a run that stays open until it is stopped."""
    return {
        "name": "long-delay",
        "description": "benchmark: open streams and stopping on disconnect",
        "config": {"timeout": seconds + 60, "retry_count": 0},
        "nodes": [
            {"id": "start", "type": "START", "name": "Start", "config": {"inputs": []}},
            {"id": "wait", "type": "DELAY", "name": "Wait", "config": {"seconds": seconds}},
            {"id": "end", "type": "END", "name": "End", "config": {"outputs": {}}},
        ],
        "connections": [{"from": "start", "to": "wait"}, {"from": "wait", "to": "end"}],
    }


async def store(client: httpx.AsyncClient, definition: dict[str, Any]) -> str:
    """Create the workflow; return its execute path."""
    created = await client.post("/api/workflows", json=definition)
    created.raise_for_status()
    return f"/api/workflow/{created.json()['id']}/execute"


def workflow_id(execute_path: str) -> str:
    return execute_path.split("/")[3]


def run_target(base_url: str, execute_path: str, token: str) -> wrk.Target:
    """A streamed run of the workflow at `execute_path`, as wrk drives it."""
    return wrk.Target(
        url=base_url + execute_path,
        body=json.dumps(INPUTS).encode(),
        expect=wrk.SSE_RUN,
        headers={"Authorization": f"Bearer {token}", "Accept": "text/event-stream"},
    )
