"""Reads of a finished run through the API: right after a client saw `workflow_finished`
(read-after-finish), and once everything has settled (history against the log).

A read-after-finish check asks four things at once, on the gateway the client last used:
- `GET /api/executions/{id}`: terminal, the status the client saw, `last_seq` that far;
- `GET /api/executions/{id}/history`: the timeline reaches the `workflow_finished` seq;
- `GET /api/executions?status=<status>` around the run's creation time: the run is listed;
- `GET /v1/workflows/run/{id}` (Dify's run detail): the status the client saw.
Any other answer is a stale read, kept with what was answered.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx

from chaos.streams import RunFollower

ENDPOINTS = ("record", "timeline", "list_by_status", "dify_detail")
READ_TIMEOUT_S = 10.0


@dataclass
class ReadCheck:
    stale: dict[str, str] = field(default_factory=dict)  # endpoint → what it answered

    @property
    def ok(self) -> bool:
        return not self.stale


async def _get(clients: list[httpx.AsyncClient], path: str, **params: Any) -> tuple[int, Any]:
    """The first answer any gateway gives: a gateway that is down is no stale read, a client
    asks the next one."""
    failure = ""
    for client in clients:
        try:
            response = await client.get(path, params=params or None, timeout=READ_TIMEOUT_S)
            break
        except httpx.HTTPError as exc:
            failure = f"{type(exc).__name__}: {exc}"
    else:
        return 0, failure
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, response.text[:200]


async def read_after_finish(clients: list[httpx.AsyncClient], follower: RunFollower) -> ReadCheck:
    """`clients`: the gateway the client last used first, then the others."""
    assert follower.finished is not None and follower.run_id is not None
    run_id = follower.run_id
    status = str(follower.finished["data"]["status"])
    last_seq = int(follower.finished["seq"])
    created = follower.created_at or float(follower.finished["data"].get("created_at") or 0)
    record, timeline, listed, dify = await asyncio.gather(
        _get(clients, f"/api/executions/{run_id}"),
        _get(clients, f"/api/executions/{run_id}/history"),
        _get(
            clients,
            "/api/executions",
            status=status,
            created_after=created - 1,
            created_before=created + 1,
            size=100,
        ),
        _get(clients, f"/v1/workflows/run/{run_id}"),
    )
    check = ReadCheck()
    code, body = record
    if code != 200 or body.get("status") != status or int(body.get("last_seq", 0)) < last_seq:
        check.stale["record"] = _describe(code, body, ("status", "last_seq"))
    code, body = timeline
    if code != 200 or not isinstance(body, list) or max_seq(body) < last_seq:
        check.stale["timeline"] = (
            f"HTTP {code}: last seq {max_seq(body)}" if isinstance(body, list) else f"{code}"
        )
    code, body = listed
    if code != 200 or run_id not in {item.get("id") for item in body.get("items", [])}:
        check.stale["list_by_status"] = _describe(code, body, ("total",))
    code, body = dify
    if code != 200 or (body.get("status") != status):
        check.stale["dify_detail"] = _describe(code, body, ("status",))
    return check


def max_seq(timeline: Any) -> int:
    if not isinstance(timeline, list):
        return 0
    return max((int(entry.get("seq", 0)) for entry in timeline), default=0)


def _describe(code: int, body: Any, keys: tuple[str, ...]) -> str:
    if not isinstance(body, dict):
        return f"HTTP {code}: {str(body)[:120]}"
    if code != 200:
        return f"HTTP {code}: {body.get('code')}"
    return f"HTTP {code}: " + ", ".join(f"{key}={body.get(key)!r}" for key in keys)


@dataclass(frozen=True)
class HistoryComparison:
    run_id: str
    problem: str | None  # None: the record matches the log


async def compare_with_log(
    client: httpx.AsyncClient, run_id: str, status: str, outputs: Any, last_seq: int
) -> HistoryComparison:
    """What the owner reads of the run against its log: status, outputs and last seq."""
    code, body = await _get([client], f"/api/executions/{run_id}")
    if code == 404:
        return HistoryComparison(run_id, "404 for its owner (no record, or no owner on it)")
    if code != 200 or not isinstance(body, dict):
        message = body.get("message") if isinstance(body, dict) else body
        return HistoryComparison(run_id, f"HTTP {code}: {str(message)[:160]}")
    problems = []
    if body.get("status") != status:
        problems.append(f"status {body.get('status')!r}, log {status!r}")
    if body.get("outputs") != outputs:
        problems.append(f"outputs {body.get('outputs')!r}, log {outputs!r}")
    if int(body.get("last_seq", 0)) != last_seq:
        problems.append(f"last_seq {body.get('last_seq')}, log {last_seq}")
    running = [
        n.get("node_id") for n in body.get("nodes", []) if n.get("status") in ("running", None)
    ]
    if running and status != "running":
        problems.append(f"node attempts still running: {running}")
    return HistoryComparison(run_id, "; ".join(problems) or None)
