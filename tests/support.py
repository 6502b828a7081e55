"""Helpers for tests: definitions, tokens, SSE reading and event-log reading."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import nats
from nats.js.api import DeliverPolicy

GREET: dict[str, Any] = {
    "name": "greet",
    "description": "Says hello",
    "tags": ["demo"],
    "config": {"timeout": 300, "retry_count": 0},
    "nodes": [
        {
            "id": "start",
            "type": "START",
            "name": "Start",
            "config": {"inputs": [{"name": "name", "type": "string", "required": True}]},
        },
        {
            "id": "greet",
            "type": "TEMPLATE",
            "name": "Greet",
            "config": {"template": "Hello {{input.name}}!", "stream": True},
        },
        {
            "id": "end",
            "type": "END",
            "name": "End",
            "config": {"outputs": {"answer": "{{greet.text}}"}},
        },
    ],
    "connections": [{"from": "start", "to": "greet"}, {"from": "greet", "to": "end"}],
}


def delay_then_template(seconds: float, timeout: float | None = None) -> dict[str, Any]:
    """START → DELAY → TEMPLATE `after` → END; `after` never starts if the run stops mid-delay."""
    return {
        "name": f"wait-{uuid.uuid4().hex[:6]}",
        "config": {"timeout": timeout} if timeout else {},
        "nodes": [
            {
                "id": "start",
                "type": "START",
                "config": {"inputs": [{"name": "name", "type": "string"}]},
            },
            {"id": "wait", "type": "DELAY", "config": {"seconds": seconds}},
            {"id": "after", "type": "TEMPLATE", "config": {"template": "done", "stream": True}},
            {"id": "end", "type": "END", "config": {"outputs": {"message": "{{after.text}}"}}},
        ],
        "connections": [
            {"from": "start", "to": "wait"},
            {"from": "wait", "to": "after"},
            {"from": "after", "to": "end"},
        ],
    }


def grade() -> dict[str, Any]:
    return {
        "name": f"grade-{uuid.uuid4().hex[:6]}",
        "nodes": [
            {
                "id": "start",
                "type": "START",
                "config": {
                    "inputs": [
                        {"name": "score", "type": "number", "required": True},
                        {"name": "verified", "type": "boolean", "default": False},
                    ]
                },
            },
            {
                "id": "check",
                "type": "CONDITION",
                "config": {"condition": "{{input.score}} >= 60 and {{input.verified}} == true"},
            },
            {
                "id": "pass_msg",
                "type": "TEMPLATE",
                "config": {"template": "Passed with {{input.score}}"},
            },
            {"id": "fail_msg", "type": "TEMPLATE", "config": {"template": "Not passed"}},
            {
                "id": "end_pass",
                "type": "END",
                "config": {"outputs": {"result": "{{pass_msg.text}}"}},
            },
            {
                "id": "end_fail",
                "type": "END",
                "config": {"outputs": {"result": "{{fail_msg.text}}"}},
            },
        ],
        "connections": [
            {"from": "start", "to": "check"},
            {"from": "check", "to": "pass_msg", "type": "CONDITIONAL_TRUE"},
            {"from": "check", "to": "fail_msg", "type": "CONDITIONAL_FALSE"},
            {"from": "pass_msg", "to": "end_pass"},
            {"from": "fail_msg", "to": "end_fail"},
        ],
    }


def run_events(run_id: str) -> str:
    """Every stored event of a run, whoever owns it."""
    return f"flowstream.events.*.*.{run_id}.*"


def make_token(secret: str, user: str, ttl_s: float = 3600) -> str:
    now = int(time.time())
    return jwt.encode({"sub": user, "iat": now, "exp": now + int(ttl_s)}, secret, algorithm="HS256")


@dataclass(frozen=True)
class Frame:
    id: str | None
    event: str | None
    data: str

    def json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.data)
        return parsed


async def sse_frames(response: httpx.Response) -> AsyncIterator[Frame]:
    """Parse SSE frames exactly as sent, so framing itself is under test.

    Keep-alives (`: ping` comments, Dify's bare `event: ping`) are framing, not events: skipped.
    """
    frame_id: str | None = None
    event: str | None = None
    data: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield Frame(frame_id, event, "\n".join(data))
            elif event not in (None, "ping"):
                raise AssertionError(f"an event frame without data: {event}")
            frame_id, event, data = None, None, []
        elif line.startswith(":"):
            continue
        elif line.startswith("id: "):
            frame_id = line[4:]
        elif line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])


async def read_run_log(
    nats_url: str, run_id: str, until_final: bool = True
) -> list[dict[str, Any]]:
    """Every stored event of a run, read from JetStream; waits on the subscription for the last."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        sub = await js.subscribe(
            run_events(run_id),
            stream="FLOWSTREAM_EVENTS",
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
        )
        events: list[dict[str, Any]] = []
        while True:
            msg = await sub.next_msg(timeout=30)
            event: dict[str, Any] = json.loads(msg.data)
            events.append(event)
            if event["event"] == "workflow_finished" or (
                not until_final and msg.metadata.num_pending == 0
            ):
                return events
    finally:
        await nc.close()


async def history_caught_up(nats_url: str, within_s: float = 30) -> None:
    """Wait until history has acknowledged all the event log holds now: on its acks, not time."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        target = (await js.stream_info("FLOWSTREAM_EVENTS")).state.last_seq
        acks = await nc.subscribe("$JS.ACK.FLOWSTREAM_EVENTS.history.>")
        info = None
        try:
            async with asyncio.timeout(within_s):
                while True:
                    info = await js.consumer_info("FLOWSTREAM_EVENTS", "history")
                    if info.ack_floor.stream_seq >= target:
                        return
                    await acks.next_msg(timeout=within_s)
        except TimeoutError:
            raise AssertionError(f"history did not reach {target}: {info}") from None
        finally:
            await acks.unsubscribe()
    finally:
        await nc.close()
