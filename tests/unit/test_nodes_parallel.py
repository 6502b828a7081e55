"""PARALLEL: branches, `max_concurrent`, `wait_for_all`, their events, failures and nesting."""

from __future__ import annotations

import asyncio

from flowstream_engine.state import RunState
from flowstream_shared.events import (
    EventName,
    NodeFinished,
    NodeStarted,
    NodeStatus,
    ParallelBranchFinished,
    ParallelBranchStarted,
    RunEvent,
    RunStatus,
)
from flowstream_shared.validation import validate_definition
from flowstream_shared.workflow import WorkflowDefinition

from tests.unit.builders import (
    Spec,
    connect,
    definition,
    delay,
    end,
    loop,
    parallel,
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


def fan_out(
    branches: list[Spec], *, join: str = "", valid: bool = True, **config: object
) -> WorkflowDefinition:
    """START → fan (PARALLEL) → each branch node → end."""
    ids = [b["id"] for b in branches]
    workflow = definition(
        [start(), parallel("fan", **config), *branches, end(answer=join or "done")],
        [
            connect("start", "fan"),
            *(connect("fan", i, "PARALLEL") for i in ids),
            *(connect(i, "end") for i in ids),
        ],
    )
    if valid:
        validate_definition(workflow)
    return workflow


def branch_events(events: list[RunEvent]) -> list[tuple[str, str, str | None]]:
    found: list[tuple[str, str, str | None]] = []
    for event in events:
        if isinstance(event, ParallelBranchStarted):
            found.append(("started", event.data.parallel_start_node_id, None))
        elif isinstance(event, ParallelBranchFinished):
            found.append(("finished", event.data.parallel_start_node_id, event.data.status))
    return found


async def test_branches_run_concurrently_and_the_join_waits_for_all() -> None:
    workflow = fan_out(
        [delay("a", 0.2), delay("b", 0.2), template("c", "C")],
        join="{{a.seconds}}/{{b.seconds}}/{{c.text}}",
    )
    run = run_of(workflow, {})

    finished = await run.execute()

    events = run.log.events
    assert_gap_free(events)
    assert finished == the_finish(events)
    assert finished.status == RunStatus.SUCCEEDED
    assert finished.outputs == {"answer": "0.2/0.2/C"}
    assert started_ids(events).count("end") == 1
    order = [(e.event, e.data.node_id) for e in events if isinstance(e, NodeStarted | NodeFinished)]
    starts_of_ab = [
        i
        for i, item in enumerate(order)
        if item in ((EventName.NODE_STARTED, "a"), (EventName.NODE_STARTED, "b"))
    ]
    first_finish = min(
        i for i, (e, n) in enumerate(order) if e == EventName.NODE_FINISHED and n in "ab"
    )
    assert max(starts_of_ab) < first_finish
    pairs = branch_events(events)
    assert sorted(p for p in pairs if p[0] == "started") == [
        ("started", "a", None),
        ("started", "b", None),
        ("started", "c", None),
    ]
    assert sorted(p for p in pairs if p[0] == "finished") == [
        ("finished", s, NodeStatus.SUCCEEDED) for s in "abc"
    ]
    first = of_type(events, ParallelBranchStarted)[0].data
    assert first.parallel_id == "fan"
    assert first.parent_parallel_id is None
    assert first.loop_id is None
    # Each branch node says which branch it ran in, as Dify does.
    assert finished_nodes(events)["a"].execution_metadata == {
        "parallel_id": "fan",
        "parallel_start_node_id": "a",
    }
    assert finished_nodes(events)["end"].execution_metadata is None
    # A branch is announced before its first node starts and finished after its last one.
    seq: dict[tuple[str, str], int] = {}
    for e in events:
        if isinstance(e, ParallelBranchStarted | ParallelBranchFinished):
            seq[(e.event.value, e.data.parallel_start_node_id)] = e.seq
        elif isinstance(e, NodeStarted | NodeFinished):
            seq[(e.event.value, e.data.node_id)] = e.seq
    assert seq[("parallel_branch_started", "a")] < seq[("node_started", "a")]
    assert seq[("node_finished", "a")] < seq[("parallel_branch_finished", "a")]


async def test_max_concurrent_holds_branches_back() -> None:
    workflow = fan_out([delay("a", 0.05), delay("b", 0.05), delay("c", 0.05)], max_concurrent=1)
    run = run_of(workflow, {})

    finished = await run.execute()

    assert finished.status == RunStatus.SUCCEEDED
    assert branch_events(run.log.events) == [
        ("started", "a", None),
        ("finished", "a", NodeStatus.SUCCEEDED),
        ("started", "b", None),
        ("finished", "b", NodeStatus.SUCCEEDED),
        ("started", "c", None),
        ("finished", "c", NodeStatus.SUCCEEDED),
    ]


async def test_max_concurrent_two_of_three() -> None:
    workflow = fan_out([delay("a", 0.2), delay("b", 0.05), delay("c", 0.05)], max_concurrent=2)
    run = run_of(workflow, {})

    await run.execute()

    pairs = branch_events(run.log.events)
    assert pairs[:2] == [("started", "a", None), ("started", "b", None)]
    assert pairs.index(("started", "c", None)) > pairs.index(
        ("finished", "b", NodeStatus.SUCCEEDED)
    )


async def test_without_wait_for_all_the_first_branch_wins_and_the_others_stop() -> None:
    # fast → joined; slow → slow_next → joined: `joined` runs once `fast` wins.
    workflow = definition(
        [
            start(),
            parallel("fan", wait_for_all=False),
            delay("slow", 30),
            template("slow_next", "never"),
            template("fast", "F"),
            template("joined", "after the race"),
            end(answer="{{joined.text}}"),
        ],
        [
            connect("start", "fan"),
            connect("fan", "slow", "PARALLEL"),
            connect("fan", "fast", "PARALLEL"),
            connect("slow", "slow_next"),
            connect("slow_next", "joined"),
            connect("fast", "joined"),
            connect("joined", "end"),
        ],
    )
    validate_definition(workflow)
    run = run_of(workflow, {})

    async with asyncio.timeout(2):
        finished = await run.execute()

    events = run.log.events
    nodes = finished_nodes(events)
    assert nodes["slow"].status == NodeStatus.STOPPED
    assert nodes["slow"].error == "another branch of PARALLEL `fan` finished first"
    assert "slow_next" not in started_ids(events)
    assert started_ids(events).count("joined") == 1
    assert finished.status == RunStatus.SUCCEEDED
    assert finished.outputs == {"answer": "after the race"}
    assert ("finished", "fast", NodeStatus.SUCCEEDED) in branch_events(events)
    assert ("finished", "slow", NodeStatus.STOPPED) in branch_events(events)
    assert_gap_free(events)
    the_finish(events)


async def test_a_race_with_held_back_branches_never_starts_them() -> None:
    workflow = fan_out(
        [template("a", "A"), delay("b", 30), delay("c", 30)], wait_for_all=False, max_concurrent=1
    )
    run = run_of(workflow, {})

    async with asyncio.timeout(2):
        finished = await run.execute()

    assert finished.status == RunStatus.SUCCEEDED
    assert not {"b", "c"} & set(started_ids(run.log.events))
    assert branch_events(run.log.events) == [
        ("started", "a", None),
        ("finished", "a", NodeStatus.SUCCEEDED),
    ]


async def test_a_failing_branch_fails_the_run_and_stops_the_others() -> None:
    workflow = fan_out([delay("slow", 30), template("broken", "{{input.nope}}")], valid=False)
    run = run_of(workflow, {})

    async with asyncio.timeout(2):
        finished = await run.execute()

    events = run.log.events
    nodes = finished_nodes(events)
    assert nodes["broken"].status == NodeStatus.FAILED
    assert nodes["slow"].status == NodeStatus.STOPPED
    assert finished.status == RunStatus.FAILED
    assert finished.error == nodes["broken"].error
    pairs = branch_events(events)
    assert ("finished", "broken", NodeStatus.FAILED) in pairs
    assert ("finished", "slow", NodeStatus.STOPPED) in pairs
    finished_data = [e.data for e in of_type(events, ParallelBranchFinished)]
    assert {d.parallel_start_node_id: d.error for d in finished_data}["broken"] == nodes[
        "broken"
    ].error
    the_finish(events)


async def test_a_stop_ends_every_started_branch() -> None:
    workflow = fan_out([delay("a", 30), delay("b", 30)])
    run = run_of(workflow, {})
    both = run.log.seen(node_started("b"))

    task = asyncio.create_task(run.execute())
    async with asyncio.timeout(PATIENCE):
        await both.wait()
    run.executor.request_stop()
    finished = await task

    assert finished.status == RunStatus.STOPPED
    assert sorted(branch_events(run.log.events)[2:]) == [
        ("finished", "a", NodeStatus.STOPPED),
        ("finished", "b", NodeStatus.STOPPED),
    ]


async def test_nested_parallels_name_their_parent_branch() -> None:
    workflow = definition(
        [
            start(),
            parallel("outer"),
            parallel("inner"),
            template("x", "x"),
            template("y", "y"),
            template("z", "z"),
            end(answer="{{x.text}}{{y.text}}{{z.text}}"),
        ],
        [
            connect("start", "outer"),
            connect("outer", "inner", "PARALLEL"),
            connect("outer", "z", "PARALLEL"),
            connect("inner", "x", "PARALLEL"),
            connect("inner", "y", "PARALLEL"),
            connect("x", "end"),
            connect("y", "end"),
            connect("z", "end"),
        ],
    )
    validate_definition(workflow)
    run = run_of(workflow, {})

    finished = await run.execute()

    assert finished.outputs == {"answer": "xyz"}
    started = {
        e.data.parallel_start_node_id: e.data
        for e in of_type(run.log.events, ParallelBranchStarted)
    }
    assert started["x"].parallel_id == "inner"
    assert (started["x"].parent_parallel_id, started["x"].parent_parallel_start_node_id) == (
        "outer",
        "inner",
    )
    assert started["z"].parent_parallel_id is None


async def test_branches_inside_a_loop_body_carry_the_loop_id() -> None:
    workflow = definition(
        [
            start(),
            loop("rep", 2),
            parallel("fan"),
            template("a", "a{{loop.index}}"),
            template("b", "b{{loop.index}}"),
            template("join", "{{a.text}}{{b.text}}"),
            template("after", "{{join.text}}"),
            end(answer="{{after.text}}"),
        ],
        [
            connect("start", "rep"),
            connect("rep", "fan", "LOOP"),
            connect("fan", "a", "PARALLEL"),
            connect("fan", "b", "PARALLEL"),
            connect("a", "join"),
            connect("b", "join"),
            connect("join", "rep"),
            connect("rep", "after"),
            connect("after", "end"),
        ],
    )
    validate_definition(workflow)
    run = run_of(workflow, {})

    finished = await run.execute()

    assert finished.outputs == {"answer": "a1b1"}
    branches = of_type(run.log.events, ParallelBranchStarted)
    assert len(branches) == 4
    assert {b.data.loop_id for b in branches} == {"rep"}


async def test_a_resumed_run_does_not_announce_a_branch_twice() -> None:
    workflow = fan_out([template("a", "A"), template("b", "B")], join="{{a.text}}{{b.text}}")
    first = run_of(workflow, {})
    await first.execute()
    cut = next(
        e.seq for e in first.log.events if isinstance(e, NodeFinished) and e.data.node_id in "ab"
    )
    before = [e for e in first.log.events if e.seq <= cut]

    resumed = prepare(first.command, RunState.fold(before))
    finished = await resumed.execute()

    combined = [*before, *resumed.log.events]
    assert_gap_free(combined)
    assert finished.outputs == {"answer": "AB"}
    pairs = branch_events(combined)
    assert sorted(pairs) == sorted(
        [
            ("started", "a", None),
            ("started", "b", None),
            ("finished", "a", NodeStatus.SUCCEEDED),
            ("finished", "b", NodeStatus.SUCCEEDED),
        ]
    )
