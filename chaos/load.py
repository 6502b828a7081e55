"""The clients: each starts one run with an `Idempotency-Key`, follows it to its end over SSE or a
WebSocket on whichever gateway answers, and checks reads right after it saw the run finish.

A client retries a submission that failed (503, a refused or dropped connection) with the same
key, and resumes a stream that ended early on the next gateway: from its last `id:` with
`Last-Event-ID` (SSE), or from the start, skipping what it has (WebSocket). It never starts a
second run: every answer's run id is kept, and the checks count more than one as a ghost.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from chaos.reads import ReadCheck, read_after_finish
from chaos.streams import RunFollower, StreamEnded, SubmitRefused, follow_sse, follow_ws

# What each client uses, by its index: most start a run by streaming it (the seed API); some
# start it asynchronously and attach over SSE; some follow it over a WebSocket.
TRANSPORTS = ("sse",) * 7 + ("attach",) * 2 + ("ws",)
RETRY_PAUSE_S = (0.2, 0.5, 1.0, 2.0)


@dataclass
class ClientRecord:
    index: int
    key: str
    transport: str
    follower: RunFollower = field(default_factory=RunFollower)
    answered_run_ids: set[str] = field(default_factory=set)
    submissions: int = 0
    refusals: list[str] = field(default_factory=list)
    resumes: int = 0
    gave_up: str | None = None
    read: ReadCheck | None = None

    @property
    def run_id(self) -> str | None:
        return self.follower.run_id

    def note_run_id(self, run_id: str) -> None:
        self.answered_run_ids.add(run_id)
        self.follower.run_id = self.follower.run_id or run_id


@dataclass(frozen=True)
class LoadTarget:
    gateway_urls: Callable[[], list[str]]  # the gateways to use now (faults change them)
    token: str
    workflow_id: str
    client_for: Callable[[str], httpx.AsyncClient]


async def run_clients(
    target: LoadTarget, runs: int, concurrency: int, patience_s: float, limit_s: float
) -> list[ClientRecord]:
    gate = asyncio.Semaphore(concurrency)
    records = [
        ClientRecord(i, f"chaos-{uuid.uuid4()}", TRANSPORTS[i % len(TRANSPORTS)])
        for i in range(runs)
    ]
    clients = {url: target.client_for(url) for url in target.gateway_urls()}
    try:

        async def one(record: ClientRecord) -> None:
            async with gate:
                await _run_client(target, clients, record, patience_s)

        tasks = [asyncio.create_task(one(record)) for record in records]
        _, late = await asyncio.wait(tasks, timeout=limit_s)
        for task in late:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for record in records:
            if record.follower.finished is None and record.gave_up is None:
                record.gave_up = f"still following when the load phase ended ({limit_s:g} s)"
    finally:
        await asyncio.gather(*(client.aclose() for client in clients.values()))
    return records


async def _run_client(
    target: LoadTarget,
    clients: dict[str, httpx.AsyncClient],
    record: ClientRecord,
    patience_s: float,
) -> None:
    give_up_at = time.monotonic() + patience_s
    urls = target.gateway_urls()
    rotation = itertools.cycle(range(len(urls)))
    for _ in range(record.index % len(urls)):
        next(rotation)
    pauses = itertools.chain(RETRY_PAUSE_S, itertools.repeat(RETRY_PAUSE_S[-1]))
    follower = record.follower
    while follower.finished is None:
        if time.monotonic() > give_up_at:
            record.gave_up = f"no workflow_finished after {patience_s:g} s"
            return
        url = target.gateway_urls()[next(rotation)]
        client = clients[url]
        try:
            await _one_connection(target, client, url, record)
        except SubmitRefused as exc:
            record.refusals.append(str(exc))
            if not exc.retry:
                record.gave_up = f"refused: {exc}"
                return
        except (StreamEnded, httpx.HTTPError, OSError, TimeoutError) as exc:
            record.refusals.append(f"{type(exc).__name__}: {exc}"[:200])
        if follower.finished is None:
            record.resumes += 1
            await asyncio.sleep(next(pauses))
    others = [c for u, c in clients.items() if u != url]
    record.read = await read_after_finish([client, *others], record.follower)


async def _one_connection(
    target: LoadTarget, client: httpx.AsyncClient, url: str, record: ClientRecord
) -> None:
    follower = record.follower
    inputs = {"n": record.index}
    key_header = {"Idempotency-Key": record.key}
    if record.transport == "sse" and follower.cursor is None:
        # Nothing seen yet: (re)submit; a repeated key answers the same run from its start.
        record.submissions += 1
        await follow_sse(
            client,
            follower,
            "POST",
            f"/api/workflow/{target.workflow_id}/execute",
            json_body={"inputs": inputs, "on_disconnect": "continue"},
            headers=key_header,
            replayed=True,
        )
        return
    if follower.run_id is None:
        record.submissions += 1
        response = await client.post(
            "/api/executions",
            json={"workflow_id": target.workflow_id, "inputs": inputs},
            headers=key_header,
        )
        if response.status_code != 202:
            retry = response.status_code >= 500 or response.status_code == 429
            raise SubmitRefused(response.status_code, response.text, retry)
        record.note_run_id(str(response.json()["id"]))
    assert follower.run_id is not None
    if record.transport == "ws":
        await follow_ws(url.replace("http://", "ws://"), target.token, follower)
        return
    headers = {"Last-Event-ID": str(follower.cursor)} if follower.cursor is not None else {}
    await follow_sse(
        client,
        follower,
        "GET",
        f"/api/executions/{follower.run_id}/events",
        headers=headers,
        replayed=follower.cursor is None,
    )


def summary_of(records: list[ClientRecord]) -> dict[str, Any]:
    by_transport: dict[str, int] = {}
    for record in records:
        by_transport[record.transport] = by_transport.get(record.transport, 0) + 1
    return {
        "clients": len(records),
        "by_transport": by_transport,
        "resumes": sum(r.resumes for r in records),
        "resume_frames": sum(r.follower.resume_frames for r in records),
        "ws_restart_closes": sum(r.follower.restart_closes for r in records),
        "submissions": sum(r.submissions for r in records),
        "refusals": sum(len(r.refusals) for r in records),
    }
