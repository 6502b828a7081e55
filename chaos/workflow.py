"""The chaos workflow: START → three API_CALL nodes in a row, each calling the side-effect peer
with the run's id and its own node id → END, whose outputs history must agree with."""

from __future__ import annotations

import itertools
from typing import Any

CALL_NODES = ("call1", "call2", "call3")


def chaos_workflow(peer_url: str, call_ms: int) -> dict[str, Any]:
    calls = [
        {
            "id": node_id,
            "type": "API_CALL",
            "name": node_id,
            "config": {
                "method": "POST",
                "url": f"{peer_url}/effect/{{{{execution.id}}}}/{node_id}?ms={call_ms}",
                "body": {"n": "{{input.n}}"},
                "timeout": 30,
                "outputs": {"node": "{{response.body.node}}"},
            },
        }
        for node_id in CALL_NODES
    ]
    ids = ["start", *CALL_NODES, "end"]
    return {
        "name": "chaos",
        "description": "chaos suite: three side effects in a row",
        "config": {"timeout": 600, "retry_count": 0},
        "nodes": [
            {
                "id": "start",
                "type": "START",
                "name": "Start",
                "config": {"inputs": [{"name": "n", "type": "number", "required": True}]},
            },
            *calls,
            {
                "id": "end",
                "type": "END",
                "name": "End",
                "config": {
                    "outputs": {
                        "n": "{{input.n}}",
                        "last": "{{call3.node}}",
                    }
                },
            },
        ],
        "connections": [{"from": a, "to": b} for a, b in itertools.pairwise(ids)],
    }
