"""The stored event log of a scenario, read back whole with JetStream direct get, each message
with the time the stream stored it (`Nats-Time-Stamp`).

Each scenario has NATS to itself, so the whole stream is the scenario's: every run's events
(`flowstream.events.…`) and every engine attempt's claim marker (`flowstream.claims.<run>`).
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flowstream_shared import subjects
from nats.aio.client import Client

_PAGE = 512
_REQUEST_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class StoredEvent:
    stream_seq: int
    stored_at: float
    event: str
    seq: int  # the run's own sequence, from the payload
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ClaimMarker:
    stream_seq: int
    stored_at: float
    engine: str
    delivery: int


@dataclass
class RunLog:
    run_id: str
    events: list[StoredEvent] = field(default_factory=list)
    claims: list[ClaimMarker] = field(default_factory=list)

    @property
    def finished(self) -> list[StoredEvent]:
        return [e for e in self.events if e.event == "workflow_finished"]

    def first_event_after(self, at: float) -> StoredEvent | None:
        return next((e for e in self.events if e.stored_at > at), None)

    def node_finishes(self, node_id: str) -> list[StoredEvent]:
        """The node's `node_finished` events that say it ran to its end: a node interrupted
        by a hand-over is reported `stopped`, and runs again."""
        return [
            e
            for e in self.events
            if e.event == "node_finished"
            and e.body.get("data", {}).get("node_id") == node_id
            and e.body.get("data", {}).get("status") != "stopped"
        ]

    def node_finished_before(self, node_id: str, at: float) -> bool:
        return any(e.stored_at <= at for e in self.node_finishes(node_id))

    def node_started_before(self, node_id: str, at: float) -> bool:
        return any(
            e.event == "node_started"
            and e.stored_at <= at
            and e.body.get("data", {}).get("node_id") == node_id
            for e in self.events
        )


@dataclass
class EventLog:
    runs: dict[str, RunLog]
    messages: int
    unreadable: int


def _timestamp(text: str) -> float:
    # RFC 3339 with nanoseconds; Python keeps microseconds.
    head, _, rest = text.partition(".")
    if rest:
        digits = rest.rstrip("Z")
        text = f"{head}.{digits[:6]}+00:00"
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def _page(nc: Client, after_seq: int) -> tuple[list[Any], int]:
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    request = {"seq": after_seq + 1, "batch": _PAGE, "next_by_subj": ">"}
    try:
        await nc.publish(
            f"$JS.API.DIRECT.GET.{subjects.EVENTS_STREAM}",
            json.dumps(request).encode(),
            reply=inbox,
        )
        messages: list[Any] = []
        while True:
            msg = await sub.next_msg(timeout=_REQUEST_TIMEOUT_S)
            status = (msg.headers or {}).get("Status")
            if status == "404":
                return messages, 0
            if status == "204":
                return messages, int((msg.headers or {}).get("Nats-Num-Pending", "0"))
            if status is not None:
                raise RuntimeError(f"direct get answered status {status}")
            messages.append(msg)
    finally:
        await sub.unsubscribe()


async def read_log(nc: Client) -> EventLog:
    """Every stored message, oldest first; read again until the count matches the stream's."""
    js = nc.jetstream()
    for _ in range(10):
        expected = (await js.stream_info(subjects.EVENTS_STREAM)).state.messages
        raw = []
        after = 0
        while True:
            page, pending = await _page(nc, after)
            raw += page
            if page:
                after = int(page[-1].headers["Nats-Sequence"])
            if not page or pending == 0:
                break
        if len(raw) >= expected:
            return _parse(raw)
        await asyncio.sleep(1.0)  # a replica still catching up served the read
    return _parse(raw)


def _parse(raw: list[Any]) -> EventLog:
    runs: dict[str, RunLog] = {}
    unreadable = 0
    by_run: defaultdict[str, list[StoredEvent]] = defaultdict(list)
    for msg in raw:
        headers = msg.headers or {}
        subject = headers.get("Nats-Subject", "")
        stream_seq = int(headers["Nats-Sequence"])
        stored_at = _timestamp(headers.get("Nats-Time-Stamp", "1970-01-01T00:00:00Z"))
        try:
            body = json.loads(msg.data)
        except ValueError:
            unreadable += 1
            continue
        if subject.startswith(subjects.CLAIMS_PREFIX + "."):
            run_id = subject.rsplit(".", 1)[1]
            run = runs.setdefault(run_id, RunLog(run_id))
            run.claims.append(
                ClaimMarker(stream_seq, stored_at, str(body.get("engine")), body.get("delivery", 0))
            )
            continue
        address = subjects.parse_event_subject(subject)
        if address is None or not isinstance(body, dict) or "seq" not in body:
            unreadable += 1
            continue
        runs.setdefault(address.run.run_id, RunLog(address.run.run_id))
        by_run[address.run.run_id].append(
            StoredEvent(stream_seq, stored_at, address.event, int(body["seq"]), body)
        )
    for run_id, events in by_run.items():
        runs[run_id].events = events
    return EventLog(runs, len(raw), unreadable)
