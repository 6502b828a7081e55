"""LOOP: iterations, `loop.index`, the bound, errors, stops, timeouts, nesting and resume."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from flowstream_engine.state import RunState
from flowstream_shared.events import (
    LoopCompleted,
    LoopNext,
    LoopStarted,
    NodeFinished,
    NodeStarted,
    NodeStatus,
    RunEvent,
    RunStatus,
)
from flowstream_shared.validation import validate_definition
from flowstream_shared.workflow import WorkflowDefinition

from tests.unit.builders import (
    Spec,
    condition,
    connect,
    definition,
    delay,
    end,
    field,
    loop,
    start,
    template,
)
from tests.unit.runs import (
    PATIENCE,
    assert_gap_free,
    finished_nodes,
    node_started,
    of_type,
    prepare,
    run_of,
    started_ids,
    the_finish,
)


def looped(
    body: list[Spec], loop_spec: Spec, *, inputs: tuple[Spec, ...] = ()
) -> WorkflowDefinition:
    """START → rep (LOOP) ⟲ body nodes in a chain ⟲; rep → after → end."""
    ids = [n["id"] for n in body]
    connections = [connect("start", "rep"), connect("rep", ids[0], "LOOP")]
    connections += [connect(a, b) for a, b in itertools.pairwise(ids)]
    connections += [connect(ids[-1], "rep"), connect("rep", "after"), connect("after", "end")]
    workflow = definition(
        [
            start(*inputs),
            loop_spec,
            *body,
            template("after", "{{rep.iterations}}:{{" + ids[-1] + ".text}}"),
            end(answer="{{after.text}}", loops="{{rep.iterations}}"),
        ],
        connections,
    )
    validate_definition(workflow)
    return workflow


def node_events(events: list[RunEvent], node_id: str) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for event in events:
        data = event.data
        if getattr(data, "node_id", None) == node_id:
            found.append((event.event.value, getattr(data, "index", None)))
    return found


async def test_a_loop_runs_its_body_while_the_condition_holds() -> None:
    workflow = looped(
        [template("body", "round {{loop.index}} of {{input.n}}")],
        loop("rep", 10, condition="{{loop.index}} < {{input.n}}"),
        inputs=(field("n", "integer", required=True),),
    )
    run = run_of(workflow, {"n": 3})

    finished = await run.execute()

    events = run.log.events
    assert_gap_free(events)
    assert finished == the_finish(events)
    assert finished.status == RunStatus.SUCCEEDED
    assert finished.outputs == {"answer": "3:round 2 of 3", "loops": 3}
    bodies = [e for e in of_type(events, NodeFinished) if e.data.node_id == "body"]
    assert [b.data.outputs for b in bodies] == [{"text": f"round {i} of 3"} for i in range(3)]
    assert [b.data.execution_metadata for b in bodies] == [
        {"loop_id": "rep", "loop_index": i} for i in range(3)
    ]
    assert len({b.data.id for b in bodies}) == 3
    loop_events = [e.event.value for e in events if getattr(e.data, "node_id", None) == "rep"]
    assert loop_events == [
        "node_started",
        "loop_started",
        "loop_next",
        "loop_next",
        "loop_completed",
        "node_finished",
    ]
    started = of_type(events, LoopStarted)[0].data
    assert started.metadata == {"loop_length": 10}
    assert [e.data.index for e in of_type(events, LoopNext)] == [1, 2]
    assert of_type(events, LoopNext)[0].data.pre_loop_output == {"body": {"text": "round 0 of 3"}}
    completed = of_type(events, LoopCompleted)[0].data
    assert completed.status == NodeStatus.SUCCEEDED
    assert completed.steps == 3
    assert completed.outputs == {"iterations": 3, "errors": []}
    assert completed.id == started.id == finished_nodes(events)["rep"].id
    # Every body node starts after the LOOP's loop_started and finishes before loop_completed.
    seqs = {e.event.value: e.seq for e in events if getattr(e.data, "node_id", None) == "rep"}
    body_seqs = [e.seq for e in events if getattr(e.data, "node_id", None) == "body"]
    assert seqs["loop_started"] < min(body_seqs) < max(body_seqs) < seqs["loop_completed"]
    assert finished.total_steps == 1 + 1 + 3 + 2  # start, rep, three bodies, after, end


async def test_max_iterations_bounds_a_loop_whose_condition_always_holds() -> None:
    workflow = looped([template("body", "x")], loop("rep", 4, condition="true"))

    finished = await run_of(workflow, {}).execute()

    assert finished.status == RunStatus.SUCCEEDED
    assert finished.outputs == {"answer": "4:x", "loops": 4}


async def test_a_loop_without_a_condition_runs_max_iterations_times() -> None:
    workflow = looped([template("body", "{{loop.index}}")], loop("rep", 2))

    finished = await run_of(workflow, {}).execute()

    assert finished.outputs == {"answer": "2:1", "loops": 2}


async def test_the_condition_reads_the_body_outputs_of_the_iteration_that_ended() -> None:
    # Count up until the body has produced "3": a data-driven loop.
    workflow = looped(
        [template("body", "{{loop.index + 1}}")],
        loop("rep", 100, condition="{{body.text}} != '3'"),
    )

    finished = await run_of(workflow, {}).execute()

    assert finished.outputs == {"answer": "3:3", "loops": 3}


async def test_a_body_with_a_condition_closes_through_both_branches() -> None:
    workflow = definition(
        [
            start(),
            loop("rep", 4),
            condition("even", "{{loop.index}} % 2 == 0"),
            template("mark", "even {{loop.index}}"),
            template("after", "done"),
            end(answer="{{after.text}}"),
        ],
        [
            connect("start", "rep"),
            connect("rep", "even", "LOOP"),
            connect("even", "mark", "CONDITIONAL_TRUE"),
            connect("even", "rep", "CONDITIONAL_FALSE"),
            connect("mark", "rep"),
            connect("rep", "after"),
            connect("after", "end"),
        ],
    )
    validate_definition(workflow)
    run = run_of(workflow, {})

    finished = await run.execute()

    marks = [
        e.data.outputs for e in of_type(run.log.events, NodeFinished) if e.data.node_id == "mark"
    ]
    assert marks == [{"text": "even 0"}, {"text": "even 2"}]
    assert finished.status == RunStatus.SUCCEEDED


async def test_a_failing_body_node_fails_the_loop_with_break_on_error() -> None:
    workflow = looped(
        [template("body", "{{input.items[loop.index]}}")],
        loop("rep", 5),
        inputs=(field("items", "array", required=True),),
    )
    run = run_of(workflow, {"items": ["a", "b"]})

    finished = await run.execute()

    events = run.log.events
    nodes = finished_nodes(events)
    assert nodes["rep"].status == NodeStatus.FAILED
    assert nodes["rep"].error is not None
    assert nodes["rep"].error.startswith("iteration 2, node `body`:")
    assert of_type(events, LoopCompleted)[0].data.status == NodeStatus.FAILED
    assert of_type(events, LoopCompleted)[0].data.steps == 3
    assert "after" not in started_ids(events)
    assert finished.status == RunStatus.FAILED
    assert finished.error == nodes["rep"].error
    assert_gap_free(events)
    the_finish(events)


async def test_without_break_on_error_the_loop_goes_on_and_the_run_is_partial() -> None:
    workflow = definition(
        [
            start(field("items", "array", required=True)),
            loop("rep", 3, break_on_error=False),
            template("pick", "{{input.items[loop.index]}}"),
            template("echo", "got {{pick.text}}"),
            template("after", "{{rep.errors | length}} error(s)"),
            end(answer="{{after.text}}"),
        ],
        [
            connect("start", "rep"),
            connect("rep", "pick", "LOOP"),
            connect("pick", "echo"),
            connect("echo", "rep"),
            connect("rep", "after"),
            connect("after", "end"),
        ],
    )
    validate_definition(workflow)
    run = run_of(workflow, {"items": ["a", "b"]})  # the third iteration fails

    finished = await run.execute()

    events = run.log.events
    echoes = [e.data.outputs for e in of_type(events, NodeFinished) if e.data.node_id == "echo"]
    assert echoes == [{"text": "got a"}, {"text": "got b"}]
    rep = finished_nodes(events)["rep"]
    assert rep.status == NodeStatus.SUCCEEDED
    assert rep.outputs is not None
    assert rep.outputs["iterations"] == 3
    assert len(rep.outputs["errors"]) == 1
    assert finished.status == RunStatus.PARTIAL_SUCCEEDED
    assert finished.outputs == {"answer": "1 error(s)"}


def slow_loop(seconds: float = 30, **extra: Any) -> WorkflowDefinition:
    return looped([delay("wait", seconds), template("body", "x")], loop("rep", 3, **extra))


async def test_a_stop_interrupts_the_body_and_starts_no_new_iteration() -> None:
    run = run_of(slow_loop(), {})
    waiting = run.log.seen(node_started("wait"))

    task = asyncio.create_task(run.execute())
    async with asyncio.timeout(PATIENCE):
        await waiting.wait()
    run.executor.request_stop()
    finished = await task

    events = run.log.events
    nodes = finished_nodes(events)
    assert nodes["wait"].status == NodeStatus.STOPPED
    assert nodes["rep"].status == NodeStatus.STOPPED
    assert of_type(events, LoopCompleted)[0].data.status == NodeStatus.STOPPED
    assert started_ids(events).count("wait") == 1
    assert "body" not in started_ids(events)
    assert finished.status == RunStatus.STOPPED
    assert_gap_free(events)
    the_finish(events)


async def test_the_deadline_interrupts_a_loop() -> None:
    run = run_of(slow_loop(10), {}, timeout=0.3)

    async with asyncio.timeout(3):
        finished = await run.execute()

    nodes = finished_nodes(run.log.events)
    assert nodes["wait"].status == NodeStatus.FAILED
    assert nodes["rep"].status == NodeStatus.FAILED
    assert finished.status == RunStatus.FAILED
    assert finished.error is not None
    assert "timed out" in finished.error
    the_finish(run.log.events)


async def test_a_loop_node_timeout_interrupts_its_body() -> None:
    run = run_of(slow_loop(10, timeout=0.2), {})  # the timeout sits on the LOOP node

    async with asyncio.timeout(3):
        finished = await run.execute()

    events = run.log.events
    nodes = finished_nodes(events)
    assert nodes["rep"].status == NodeStatus.FAILED
    assert nodes["rep"].error == "node timed out after 0.2s"
    assert nodes["wait"].status == NodeStatus.FAILED
    assert nodes["wait"].error == "interrupted: LOOP `rep` timed out"
    wait_end = next(
        e.seq for e in events if isinstance(e, NodeFinished) and e.data.node_id == "wait"
    )
    rep_end = next(e.seq for e in events if isinstance(e, NodeFinished) and e.data.node_id == "rep")
    assert wait_end < rep_end
    assert finished.status == RunStatus.FAILED
    assert_gap_free(events)
    the_finish(events)


async def test_nested_loops_see_their_own_index() -> None:
    workflow = definition(
        [
            start(),
            loop("outer", 2),
            template("row", "r{{loop.index}}"),
            loop("inner", 3),
            template("cell", "{{row.text}}c{{loop.index}}"),
            template("after", "{{cell.text}}"),
            end(answer="{{after.text}}", rows="{{outer.iterations}}"),
        ],
        [
            connect("start", "outer"),
            connect("outer", "row", "LOOP"),
            connect("row", "inner"),
            connect("inner", "cell", "LOOP"),
            connect("cell", "inner"),
            connect("inner", "outer"),
            connect("outer", "after"),
            connect("after", "end"),
        ],
    )
    validate_definition(workflow)
    run = run_of(workflow, {})

    finished = await run.execute()

    cells = [
        e.data.outputs["text"]
        for e in of_type(run.log.events, NodeFinished)
        if e.data.node_id == "cell" and e.data.outputs
    ]
    assert cells == ["r0c0", "r0c1", "r0c2", "r1c0", "r1c1", "r1c2"]
    assert finished.outputs == {"answer": "r1c2", "rows": 2}
    assert len(of_type(run.log.events, LoopStarted)) == 3  # outer once, inner per outer round


# Resume


def cut_after(events: list[RunEvent], predicate: Any) -> list[RunEvent]:
    seq = next(e.seq for e in events if predicate(e))
    return [e for e in events if e.seq <= seq]


async def test_a_resumed_run_replays_a_finished_loop() -> None:
    workflow = looped([template("body", "{{loop.index}}")], loop("rep", 3))
    first = run_of(workflow, {})
    await first.execute()
    before = cut_after(
        first.log.events, lambda e: isinstance(e, NodeFinished) and e.data.node_id == "rep"
    )

    resumed = prepare(first.command, RunState.fold(before))
    finished = await resumed.execute()

    after = resumed.log.events
    assert_gap_free([*before, *after])
    assert started_ids(after) == ["after", "end"]
    assert finished.outputs == {"answer": "3:2", "loops": 3}


async def test_a_run_handed_over_mid_loop_runs_the_loop_again() -> None:
    workflow = looped([template("body", "{{loop.index}}")], loop("rep", 3))
    first = run_of(workflow, {})
    await first.execute()
    # Cut after the second iteration's body: the LOOP had not finished.
    bodies = [
        e.seq for e in first.log.events if isinstance(e, NodeFinished) and e.data.node_id == "body"
    ]
    before = [e for e in first.log.events if e.seq <= bodies[1]]

    resumed = prepare(first.command, RunState.fold(before))
    finished = await resumed.execute()

    after = resumed.log.events
    assert_gap_free([*before, *after])
    assert started_ids(after) == ["rep", "body", "body", "body", "after", "end"]
    assert [e.data.index for e in of_type(after, NodeStarted)] == list(
        range(max(e.data.index for e in of_type(before, NodeStarted)) + 1, 100)
    )[: len(of_type(after, NodeStarted))]
    assert finished.status == RunStatus.SUCCEEDED
    assert finished.outputs == {"answer": "3:2", "loops": 3}
    the_finish([*before, *after])
