"""Reads of a finished run through the API: right after a client saw `workflow_finished`
(read-after-finish), and once everything has settled (history against the log).

A read-after-finish check asks four things at once, on the gateway the client last used:
- `GET /api/executions/{id}`: terminal, the status the client saw, `last_seq` that far;
- `GET /api/executions/{id}/history`: the timeline reaches the `workflow_finished` seq;
- `GET /api/executions?status=<status>` around the run's creation time: the run is listed;
- `GET /v1/workflows/run/{id}` (Dify's run detail): the status the client saw.
Any other answer is a stale read, kept with what was answered. A `503` with `Retry-After` is
the API saying it cannot answer consistently yet: the client asks again as told, for up to
`RETRY_FOR_S`, and only what it is finally answered counts. A read still answered `503` then is
no stale read but an unanswered one (the API kept consistency over availability), counted apart.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from chaos.streams import RunFollower

ENDPOINTS = ("record", "timeline", "list_by_status", "dify_detail")
READ_TIMEOUT_S = 10.0
RETRY_FOR_S = 45.0


@dataclass
class ReadCheck:
    stale: dict[str, str] = field(default_factory=dict)  # endpoint → what it answered
    unanswered: dict[str, str] = field(default_factory=dict)  # endpoint → its last 503

    def judge(self, endpoint: str, code: int, up_to_date: bool, answer: str) -> None:
        if code == 503:
            self.unanswered[endpoint] = answer
        elif code != 200 or not up_to_date:
            self.stale[endpoint] = answer

    @property
    def ok(self) -> bool:
        return not self.stale


async def _get(clients: list[httpx.AsyncClient], path: str, **params: Any) -> tuple[int, Any]:
    """The answer a client following `Retry-After` ends up with."""
    give_up_at = time.monotonic() + RETRY_FOR_S
    while True:
        code, body, retry_after = await _get_once(clients, path, **params)
        if code != 503 or retry_after is None or time.monotonic() + retry_after > give_up_at:
            return code, body
        await asyncio.sleep(retry_after)


async def _get_once(
    clients: list[httpx.AsyncClient], path: str, **params: Any
) -> tuple[int, Any, float | None]:
    """The first answer any gateway gives, and its `Retry-After`: a gateway that is down is no
    stale read, a client asks the next one."""
    failure = ""
    for client in clients:
        try:
            response = await client.get(path, params=params or None, timeout=READ_TIMEOUT_S)
            break
        except httpx.HTTPError as exc:
            failure = f"{type(exc).__name__}: {exc}"
    else:
        return 0, failure, None
    retry_after = response.headers.get("retry-after")
    wait = float(retry_after) if retry_after and retry_after.isdigit() else None
    try:
        return response.status_code, response.json(), wait
    except ValueError:
        return response.status_code, response.text[:200], wait


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
    check.judge(
        "record",
        code,
        isinstance(body, dict)
        and body.get("status") == status
        and int(body.get("last_seq", 0)) >= last_seq,
        _describe(code, body, ("status", "last_seq")),
    )
    code, body = timeline
    check.judge(
        "timeline",
        code,
        isinstance(body, list) and max_seq(body) >= last_seq,
        f"HTTP {code}: last seq {max_seq(body)}" if isinstance(body, list) else f"{code}",
    )
    code, body = listed
    check.judge(
        "list_by_status",
        code,
        isinstance(body, dict) and run_id in {item.get("id") for item in body.get("items", [])},
        _describe(code, body, ("total",)),
    )
    code, body = dify
    check.judge(
        "dify_detail",
        code,
        isinstance(body, dict) and body.get("status") == status,
        _describe(code, body, ("status",)),
    )
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
