"""Pausing and resuming a run: held at node boundaries, announced once, never losing a cancel."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from flowstream_engine.control import ControlRegistry, pause_key, run_id_of_key
from flowstream_engine.run.common import STOPPED_BY_USER
from flowstream_engine.state import RunState
from flowstream_shared.commands import ControlAction, ControlCommand
from flowstream_shared.events import (
    EventName,
    NodeFinished,
    NodeStarted,
    NodeStatus,
    RunEvent,
    RunStatus,
    WorkflowFinishedData,
    WorkflowPaused,
    WorkflowResumed,
)
from flowstream_shared.workflow import WorkflowDefinition

from tests.unit.builders import chain, definition, delay, end, start, template
from tests.unit.runs import (
    PATIENCE,
    Run,
    assert_gap_free,
    finished_nodes,
    node_started,
    of_type,
    prepare,
    run_of,
    started_ids,
    the_finish,
)

PAUSE = ControlCommand(action=ControlAction.PAUSE)
RESUME = ControlCommand(action=ControlAction.RESUME)
CANCEL = ControlCommand(action=ControlAction.CANCEL)


def delayed(seconds: float) -> WorkflowDefinition:
    """START → wait (DELAY) → after → end."""
    return definition(
        [start(), delay("wait", seconds), template("after", "done"), end(answer="{{after.text}}")],
        chain("start", "wait", "after", "end"),
    )


def is_event(name: EventName) -> Callable[[RunEvent], bool]:
    return lambda event: event.event == name


def timeline(events: list[RunEvent]) -> list[str]:
    """Run-level events and node starts/ends, as `event` or `event(node)`."""
    names = []
    for event in events:
        if isinstance(event, NodeStarted | NodeFinished):
            names.append(f"{event.event}({event.data.node_id})")
        elif event.event != EventName.WORKFLOW_PROGRESS:
            names.append(str(event.event))
    return names


async def until(seen: asyncio.Event) -> None:
    async with asyncio.timeout(PATIENCE):
        await seen.wait()


Finish = asyncio.Task[WorkflowFinishedData]


async def paused_in_delay(
    registry: ControlRegistry, seconds: float = 0.05, run_timeout: float = 30.0
) -> tuple[Run, Finish]:
    """A run paused while its DELAY counted: `workflow_paused` is out, `after` has not started."""
    run = run_of(delayed(seconds), {}, timeout=run_timeout)
    registry.register(run.command.run_id, run.executor)
    waiting = run.log.seen(node_started("wait"))
    paused = run.log.seen(is_event(EventName.WORKFLOW_PAUSED))
    task = asyncio.create_task(run.execute())
    await until(waiting)
    registry.receive(run.command.run_id, PAUSE)
    await until(paused)
    return run, task


async def abandoned(task: Finish) -> None:
    """The engine shuts down mid-run: the run is left for another engine."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_a_pause_during_a_delay_holds_the_next_node_until_resumed() -> None:
    registry = ControlRegistry()
    run, task = await paused_in_delay(registry)

    assert finished_nodes(run.log.events)["wait"].status == NodeStatus.SUCCEEDED  # not interrupted
    assert "after" not in started_ids(run.log.events)
    assert not task.done()
    paused = of_type(run.log.events, WorkflowPaused)[0].data
    assert (paused.id, paused.status) == (run.command.run_id, RunStatus.PAUSED)

    registry.receive(run.command.run_id, RESUME)
    finished = await task

    assert finished.status == RunStatus.SUCCEEDED
    assert finished.outputs == {"answer": "done"}
    events = run.log.events
    assert_gap_free(events)
    the_finish(events)
    steps = timeline(events)
    held = steps.index("node_finished(wait)")
    assert steps[held : held + 4] == [
        "node_finished(wait)",
        "workflow_paused",
        "workflow_resumed",
        "node_started(after)",
    ]
    resumed = of_type(events, WorkflowResumed)[0].data
    assert (resumed.id, resumed.status) == (run.command.run_id, RunStatus.RUNNING)


async def test_a_cancel_while_paused_stops_the_run() -> None:
    registry = ControlRegistry()
    run, task = await paused_in_delay(registry)

    registry.receive(run.command.run_id, ControlCommand(action=ControlAction.CANCEL))
    finished = await task

    assert finished.status == RunStatus.STOPPED
    assert finished.error == STOPPED_BY_USER
    assert "after" not in started_ids(run.log.events)
    assert of_type(run.log.events, WorkflowResumed) == []
    the_finish(run.log.events)


async def test_a_second_pause_is_a_no_op() -> None:
    registry = ControlRegistry()
    run, task = await paused_in_delay(registry)

    registry.receive(run.command.run_id, PAUSE)
    registry.receive(run.command.run_id, RESUME)
    await task

    assert len(of_type(run.log.events, WorkflowPaused)) == 1
    assert len(of_type(run.log.events, WorkflowResumed)) == 1


async def test_a_resume_when_not_paused_is_a_no_op() -> None:
    registry = ControlRegistry()
    run = run_of(delayed(0.01), {})
    registry.register(run.command.run_id, run.executor)
    registry.receive(run.command.run_id, RESUME)

    finished = await run.execute()

    assert finished.status == RunStatus.SUCCEEDED
    assert of_type(run.log.events, WorkflowPaused) == []
    assert of_type(run.log.events, WorkflowResumed) == []


async def test_a_resume_before_the_pause_took_effect_cancels_it_silently() -> None:
    registry = ControlRegistry()
    run = run_of(delayed(0.05), {})
    registry.register(run.command.run_id, run.executor)
    waiting = run.log.seen(node_started("wait"))
    task = asyncio.create_task(run.execute())
    await until(waiting)

    registry.receive(run.command.run_id, PAUSE)
    registry.receive(run.command.run_id, RESUME)  # the DELAY is still running
    finished = await task

    assert finished.status == RunStatus.SUCCEEDED
    assert of_type(run.log.events, WorkflowPaused) == []
    assert of_type(run.log.events, WorkflowResumed) == []


async def test_a_pause_received_before_register_holds_the_run_from_its_start() -> None:
    registry = ControlRegistry()
    run = run_of(delayed(0.01), {})
    registry.receive(run.command.run_id, PAUSE)
    registry.register(run.command.run_id, run.executor)
    paused = run.log.seen(is_event(EventName.WORKFLOW_PAUSED))
    task = asyncio.create_task(run.execute())
    await until(paused)

    assert timeline(run.log.events) == ["workflow_started", "workflow_paused"]
    registry.receive(run.command.run_id, RESUME)
    finished = await task
    assert finished.status == RunStatus.SUCCEEDED


async def test_the_deadline_still_applies_while_paused() -> None:
    registry = ControlRegistry()
    run = run_of(delayed(0.01), {}, timeout=0.3)
    registry.receive(run.command.run_id, PAUSE)
    registry.register(run.command.run_id, run.executor)

    finished = await run.execute()

    assert finished.status == RunStatus.FAILED
    assert finished.error == "workflow timed out after 0.3s"
    assert len(of_type(run.log.events, WorkflowPaused)) == 1
    the_finish(run.log.events)


async def test_a_paused_run_picked_up_from_its_log_stays_paused_without_a_second_event() -> None:
    registry = ControlRegistry()
    first, task = await paused_in_delay(registry, run_timeout=1.0)
    await abandoned(task)
    state = RunState.fold(first.log.events)
    assert state.paused

    again = prepare(first.command, state)
    other = ControlRegistry()
    other.receive(first.command.run_id, PAUSE)  # the flag still says paused
    other.register(first.command.run_id, again.executor)
    finished = await again.execute()  # held until the deadline ends it

    assert finished.status == RunStatus.FAILED
    assert finished.error == "workflow timed out after 1s"
    assert timeline(again.log.events) == ["workflow_finished"]  # no second workflow_paused
    assert_gap_free(first.log.events + again.log.events)


async def test_a_paused_run_picked_up_after_a_resume_announces_it_first() -> None:
    registry = ControlRegistry()
    first, task = await paused_in_delay(registry)
    await abandoned(task)

    again = prepare(first.command, RunState.fold(first.log.events))
    other = ControlRegistry()
    other.receive(first.command.run_id, RESUME)  # the latest flag
    other.register(first.command.run_id, again.executor)
    finished = await again.execute()

    assert finished.status == RunStatus.SUCCEEDED
    assert timeline(again.log.events)[:2] == ["workflow_resumed", "node_started(after)"]


def test_a_pause_or_resume_never_overwrites_a_cancel() -> None:
    registry = ControlRegistry()
    registry.receive("run-1", CANCEL)
    registry.receive("run-1", PAUSE)
    registry.receive("run-1", RESUME)

    assert registry.is_cancelled("run-1")
    assert not registry.is_paused("run-1")


def test_pause_flags_have_their_own_key() -> None:
    assert pause_key("run-1") == "run-1.pause"
    assert run_id_of_key(pause_key("run-1")) == "run-1"
    assert run_id_of_key("run-1") == "run-1"
