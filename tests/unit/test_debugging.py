"""A run under a debugger: held before each node (step mode) or at breakpoints, stepped one set
of ready nodes at a time, and still exactly where it was after a hand-over to another engine."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

from flowstream_engine.control import ControlRegistry
from flowstream_engine.state import RunState
from flowstream_shared.commands import ControlAction, ControlCommand, DebugOptions, RunCommand
from flowstream_shared.events import (
    EventName,
    NodeStarted,
    RunEvent,
    RunStatus,
    WorkflowFinishedData,
    WorkflowPaused,
)
from flowstream_shared.workflow import WorkflowDefinition

from tests.unit.builders import chain, definition, delay, end, snapshot, start, template
from tests.unit.runs import Run, assert_gap_free, finished_nodes, of_type, prepare, the_finish
from tests.unit.test_pause import PAUSE, RESUME, is_event, timeline, until

Finish = asyncio.Task[WorkflowFinishedData]


def three_steps() -> WorkflowDefinition:
    """start → greet → shout → end."""
    return definition(
        [
            start(),
            template("greet", "hello"),
            template("shout", "{{greet.text}}!"),
            end(answer="{{shout.text}}"),
        ],
        chain("start", "greet", "shout", "end"),
    )


def debugged(
    workflow: WorkflowDefinition, debug: DebugOptions, timeout: float = 30.0
) -> RunCommand:
    now = time.time()
    return RunCommand(
        run_id=f"run-{uuid.uuid4().hex}",
        task_id=f"task-{uuid.uuid4().hex}",
        workflow=snapshot(workflow),
        inputs={},
        user_id="user-1",
        created_at=now,
        deadline=now + timeout,
        debug=debug,
    )


def step(pause: WorkflowPaused) -> ControlCommand:
    return ControlCommand(action=ControlAction.STEP, pause_seq=pause.seq)


def pauses(run: Run) -> list[WorkflowPaused]:
    return of_type(run.log.events, WorkflowPaused)


async def next_pause(run: Run, count: int) -> WorkflowPaused:
    """Wait for the run's `count`-th `workflow_paused`."""
    found = await run.log.count(is_event(EventName.WORKFLOW_PAUSED), count)
    pause = found[count - 1]
    assert isinstance(pause, WorkflowPaused)
    return pause


def started(events: list[RunEvent]) -> list[str]:
    return [e.data.node_id for e in of_type(events, NodeStarted)]


async def begin(command: RunCommand) -> tuple[Run, ControlRegistry, Finish]:
    run = prepare(command)
    registry = ControlRegistry()
    registry.register(command.run_id, run.executor)
    return run, registry, asyncio.create_task(run.execute())


async def test_step_mode_pauses_before_every_node_and_steps_one_at_a_time() -> None:
    run, registry, task = await begin(debugged(three_steps(), DebugOptions(step=True)))

    held = await next_pause(run, 1)
    assert timeline(run.log.events) == ["workflow_started", "workflow_paused"]
    assert (held.data.reason, held.data.node_ids) == ("step", ["start"])
    for count, node_id in enumerate(["greet", "shout", "end"], start=2):
        registry.receive(run.command.run_id, step(held))
        held = await next_pause(run, count)
        assert held.data.node_ids == [node_id]
        # The node stepped over ran; the one it made ready has not started.
        assert node_id not in started(run.log.events)
    registry.receive(run.command.run_id, step(held))
    finished = await task

    assert finished.status == RunStatus.SUCCEEDED and finished.outputs == {"answer": "hello!"}
    steps = timeline(run.log.events)
    assert steps[-4:] == [
        "workflow_resumed",
        "node_started(end)",
        "node_finished(end)",
        "workflow_finished",
    ]
    assert len(pauses(run)) == 4
    assert_gap_free(run.log.events)


async def test_a_step_for_another_pause_changes_nothing() -> None:
    run, registry, task = await begin(debugged(three_steps(), DebugOptions(step=True)))
    held = await next_pause(run, 1)

    stale = ControlCommand(action=ControlAction.STEP, pause_seq=held.seq - 1)
    registry.receive(run.command.run_id, stale)
    registry.receive(run.command.run_id, PAUSE)  # the latest flag: nothing moves either way
    registry.receive(run.command.run_id, step(held))
    second = await next_pause(run, 2)

    assert second.data.node_ids == ["greet"]
    assert started(run.log.events) == ["start"]
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_breakpoints_hold_only_there_and_resume_passes_them() -> None:
    run, registry, task = await begin(debugged(three_steps(), DebugOptions(breakpoints=["shout"])))
    held = await next_pause(run, 1)

    assert (held.data.reason, held.data.node_ids) == ("breakpoint", ["shout"])
    assert started(run.log.events) == ["start", "greet"]
    # While held, what ran is there to inspect.
    assert finished_nodes(run.log.events)["greet"].outputs == {"text": "hello"}
    registry.receive(run.command.run_id, RESUME)
    finished = await task

    assert finished.status == RunStatus.SUCCEEDED
    assert len(pauses(run)) == 1
    the_finish(run.log.events)


async def test_resume_leaves_step_mode() -> None:
    run, registry, task = await begin(debugged(three_steps(), DebugOptions(step=True)))
    held = await next_pause(run, 1)
    registry.receive(run.command.run_id, step(held))
    await next_pause(run, 2)

    registry.receive(run.command.run_id, RESUME)
    finished = await task

    assert finished.status == RunStatus.SUCCEEDED
    assert len(pauses(run)) == 2


async def test_a_step_turns_a_paused_run_into_a_stepped_one() -> None:
    """No debugger asked for: a user's pause, then a step runs the next node and pauses again."""
    workflow = definition(
        [start(), delay("wait", 0.05), template("after", "x"), end(answer="{{after.text}}")],
        chain("start", "wait", "after", "end"),
    )
    run, registry, task = await begin(debugged(workflow, DebugOptions()))
    waiting = run.log.seen(lambda e: isinstance(e, NodeStarted) and e.data.node_id == "wait")
    await until(waiting)
    registry.receive(run.command.run_id, PAUSE)
    held = await next_pause(run, 1)
    assert (held.data.reason, held.data.node_ids) == ("pause", ["after"])

    registry.receive(run.command.run_id, step(held))
    again = await next_pause(run, 2)

    assert (again.data.reason, again.data.node_ids) == ("step", ["end"])
    registry.receive(run.command.run_id, RESUME)
    assert (await task).status == RunStatus.SUCCEEDED


async def abandoned(task: Finish) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_a_step_sent_while_the_run_changes_hands_applies_once() -> None:
    command = debugged(three_steps(), DebugOptions(step=True))
    first, registry, task = await begin(command)
    registry.receive(command.run_id, step(await next_pause(first, 1)))
    held = await next_pause(first, 2)  # before `greet`
    await abandoned(task)  # the engine goes away; the user steps meanwhile

    state = RunState.fold(first.log.events)
    again = prepare(command, state)
    other = ControlRegistry()
    other.receive(command.run_id, step(held))  # what the KV flag says
    other.register(command.run_id, again.executor)
    after = asyncio.create_task(again.execute())
    await until(again.log.seen(is_event(EventName.WORKFLOW_PAUSED)))

    # The step ran `greet` only, then the run paused before `shout`.
    assert timeline(again.log.events) == [
        "workflow_resumed",
        "node_started(greet)",
        "node_finished(greet)",
        "workflow_paused",
    ]
    assert pauses(again)[0].data.node_ids == ["shout"]
    await abandoned(after)
    assert_gap_free(first.log.events + again.log.events)


async def test_a_consumed_step_is_not_applied_again_by_the_next_engine() -> None:
    command = debugged(three_steps(), DebugOptions(step=True), timeout=1.0)
    first, registry, task = await begin(command)
    held = await next_pause(first, 1)  # before `start`
    registry.receive(command.run_id, step(held))
    await next_pause(first, 2)  # `start` ran; before `greet`
    await abandoned(task)

    again = prepare(command, RunState.fold(first.log.events))
    other = ControlRegistry()
    other.receive(command.run_id, step(held))  # the flag still holds the old step
    other.register(command.run_id, again.executor)
    finished = await again.execute()  # held before `greet` until the deadline ends it

    assert finished.status == RunStatus.FAILED and "timed out" in (finished.error or "")
    assert timeline(again.log.events) == ["workflow_finished"]  # no node, no second pause
