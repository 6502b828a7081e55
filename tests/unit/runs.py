"""Running workflows in-process against an in-memory event log: no NATS, no sleeps to wait on."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from flowstream_engine.credentials import CredentialResolver
from flowstream_engine.emitter import RunEmitter
from flowstream_engine.limits import RunLimits
from flowstream_engine.plan import plan_for
from flowstream_engine.run import RunExecutor
from flowstream_engine.state import RunState
from flowstream_shared.commands import RunCommand
from flowstream_shared.events import (
    NodeFinished,
    NodeFinishedData,
    NodeStarted,
    RunEvent,
    RunEventBase,
    WorkflowFinished,
    WorkflowFinishedData,
    parse_event,
)
from flowstream_shared.workflow import WorkflowDefinition

from tests.unit.builders import snapshot

E = TypeVar("E", bound=RunEventBase)
# Bounds every wait, so a hang fails the test quickly instead of at pytest's timeout.
PATIENCE = 5.0


class MemoryEventLog:
    """An event sink that stores every event at once and can signal when it sees one."""

    def __init__(self) -> None:
        self.records: list[tuple[str, RunEvent]] = []
        self._watches: list[tuple[Callable[[RunEvent], bool], asyncio.Event]] = []

    def append(self, event: str, payload: bytes, seq: int) -> None:
        parsed = parse_event(payload)
        assert parsed.event == event and parsed.seq == seq
        self.records.append((event, parsed))
        for predicate, seen in self._watches:
            if predicate(parsed):
                seen.set()

    async def stored(self, through: int) -> None:
        assert through <= (self.records[-1][1].seq if self.records else 0)

    def seen(self, predicate: Callable[[RunEvent], bool]) -> asyncio.Event:
        """An event set as soon as an event matching `predicate` is submitted."""
        seen = asyncio.Event()
        if any(predicate(event) for event in self.events):
            seen.set()
        self._watches.append((predicate, seen))
        return seen

    async def count(self, predicate: Callable[[RunEvent], bool], count: int) -> list[RunEvent]:
        """Wait until `count` events match `predicate`; return the matching events."""
        async with asyncio.timeout(PATIENCE):
            while True:
                found = [event for event in self.events if predicate(event)]
                if len(found) >= count:
                    return found
                seen = asyncio.Event()
                self._watches.append((predicate, seen))
                await seen.wait()

    @property
    def events(self) -> list[RunEvent]:
        return [event for _, event in self.records]


def node_started(node_id: str) -> Callable[[RunEvent], bool]:
    return lambda event: isinstance(event, NodeStarted) and event.data.node_id == node_id


def of_type(events: list[RunEvent], kind: type[E]) -> list[E]:
    return [event for event in events if isinstance(event, kind)]


def started_ids(events: list[RunEvent]) -> list[str]:
    return [event.data.node_id for event in of_type(events, NodeStarted)]


def finished_nodes(events: list[RunEvent]) -> dict[str, NodeFinishedData]:
    return {event.data.node_id: event.data for event in of_type(events, NodeFinished)}


def the_finish(events: list[RunEvent]) -> WorkflowFinishedData:
    finishes = of_type(events, WorkflowFinished)
    assert len(finishes) == 1, f"expected exactly one workflow_finished, got {len(finishes)}"
    assert events[-1] is finishes[0], "workflow_finished must be the last event"
    return finishes[0].data


def assert_gap_free(events: list[RunEvent]) -> None:
    assert [event.seq for event in events] == list(range(1, len(events) + 1))


@dataclass
class Run:
    command: RunCommand
    log: MemoryEventLog
    executor: RunExecutor

    async def execute(self) -> WorkflowFinishedData:
        async with asyncio.timeout(PATIENCE):
            return await self.executor.execute()


def command_for(
    workflow: WorkflowDefinition, inputs: dict[str, Any], timeout: float = 30.0
) -> RunCommand:
    created_at = time.time()
    return RunCommand(
        run_id=f"run-{uuid.uuid4().hex}",
        task_id=f"task-{uuid.uuid4().hex}",
        workflow=snapshot(workflow),
        inputs=inputs,
        user_id="user-1",
        created_at=created_at,
        deadline=created_at + timeout,
    )


def prepare(
    command: RunCommand,
    state: RunState | None = None,
    http: httpx.AsyncClient | None = None,
    credentials: CredentialResolver | None = None,
    limits: RunLimits | None = None,
) -> Run:
    log = MemoryEventLog()
    emitter = RunEmitter(
        log, command.run_id, command.task_id, last_seq=state.last_seq if state else 0
    )
    executor = RunExecutor(
        command,
        plan_for(command.workflow),
        emitter,
        state,
        http=http,
        credentials=credentials,
        limits=limits,
    )
    return Run(command, log, executor)


def run_of(
    workflow: WorkflowDefinition,
    inputs: dict[str, Any],
    timeout: float = 30.0,
    http: httpx.AsyncClient | None = None,
    credentials: CredentialResolver | None = None,
    limits: RunLimits | None = None,
) -> Run:
    return prepare(
        command_for(workflow, inputs, timeout), http=http, credentials=credentials, limits=limits
    )
