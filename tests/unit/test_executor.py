"""The run executor driven through an in-memory event log: no NATS, no sleeps to wait on."""

from __future__ import annotations

import asyncio

from flowstream_engine.control import ControlRegistry
from flowstream_engine.plan import plan_for
from flowstream_engine.run import STOPPED_BY_USER
from flowstream_engine.state import RunState
from flowstream_shared import subjects
from flowstream_shared.commands import ControlAction, ControlCommand, WorkflowSnapshot
from flowstream_shared.events import (
    EventName,
    NodeFinished,
    NodeRetry,
    NodeStarted,
    NodeStatus,
    RunStatus,
    TextChunk,
    WorkflowStarted,
)
from flowstream_shared.workflow import WorkflowDefinition

from tests.unit.builders import (
    GREET,
    chain,
    condition,
    connect,
    definition,
    delay,
    end,
    field,
    snapshot,
    start,
    template,
)
from tests.unit.runs import (
    PATIENCE,
    assert_gap_free,
    command_for,
    finished_nodes,
    node_started,
    of_type,
    prepare,
    run_of,
    started_ids,
    the_finish,
)


def greet() -> WorkflowDefinition:
    return WorkflowDefinition.model_validate(GREET)


def grading(score_type: str = "number") -> WorkflowDefinition:
    """START(score) → check → passed → end_pass | failed → end_fail."""
    return definition(
        [
            start(field("score", score_type, required=True)),
            condition("check", "{{input.score}} >= 60"),
            template("passed", "Passed with {{input.score}}"),
            template("failed", "Failed with {{input.score}}"),
            end("end_pass", verdict="{{passed.text}}", ok="{{check.result}}"),
            end("end_fail", verdict="{{failed.text}}", ok="{{check.result}}"),
        ],
        [
            connect("start", "check"),
            connect("check", "passed", "CONDITIONAL_TRUE"),
            connect("check", "failed", "CONDITIONAL_FALSE"),
            connect("passed", "end_pass"),
            connect("failed", "end_fail"),
        ],
    )


def delayed(seconds: float) -> WorkflowDefinition:
    """START → wait (DELAY) → after → end."""
    return definition(
        [start(), delay("wait", seconds), template("after", "done"), end(answer="{{after.text}}")],
        chain("start", "wait", "after", "end"),
    )


# A successful run


async def test_streaming_template_run_emits_every_event_in_order() -> None:
    run = run_of(greet(), {"name": "Ada"})

    finished = await run.execute()

    events = run.log.events
    assert_gap_free(events)
    assert isinstance(events[0], WorkflowStarted)
    started = events[0].data
    assert started.id == run.command.run_id
    assert started.workflow_id == run.command.workflow.workflow_id
    assert started.workflow_version == 1
    assert started.inputs["name"] == "Ada"
    assert started.inputs["sys.user_id"] == "user-1"
    assert started.inputs["sys.workflow_run_id"] == run.command.run_id

    node_events = [
        (event.event, getattr(event.data, "node_id", None))
        for event in events
        if isinstance(event, NodeStarted | NodeFinished | TextChunk)
    ]
    chunks = [(EventName.TEXT_CHUNK, None)] * len(of_type(events, TextChunk))
    assert node_events == [
        (EventName.NODE_STARTED, "start"),
        (EventName.NODE_FINISHED, "start"),
        (EventName.NODE_STARTED, "greet"),
        *chunks,
        (EventName.NODE_FINISHED, "greet"),
        (EventName.NODE_STARTED, "end"),
        (EventName.NODE_FINISHED, "end"),
    ]
    text = of_type(events, TextChunk)
    assert len(text) > 1
    assert "".join(chunk.data.text for chunk in text) == "Hello Ada!"
    assert all(chunk.data.from_variable_selector == ["greet", "text"] for chunk in text)

    nodes = finished_nodes(events)
    assert all(data.status == NodeStatus.SUCCEEDED for data in nodes.values())
    assert nodes["greet"].outputs == {"text": "Hello Ada!"}
    assert nodes["greet"].predecessor_node_id == "start"
    assert nodes["greet"].title == "Greet"
    assert [nodes[n].index for n in ("start", "greet", "end")] == [1, 2, 3]
    for start_event, finish in zip(of_type(events, NodeStarted), nodes.values(), strict=True):
        assert start_event.data.id == finish.id

    assert finished == the_finish(events)
    assert finished.status == RunStatus.SUCCEEDED
    assert finished.outputs == {"answer": "Hello Ada!"}
    assert finished.error is None
    assert finished.total_steps == 3


async def test_events_reach_the_sink_numbered_from_one() -> None:
    run = run_of(greet(), {"name": "Ada"})

    await run.execute()

    run_id = run.command.run_id
    for index, (name, event) in enumerate(run.log.records, start=1):
        assert name == event.event.value
        assert event.seq == index
        assert event.workflow_run_id == run_id
        assert event.task_id == run.command.task_id


def test_event_subjects_are_addressed_by_owner() -> None:
    run = subjects.RunAddress.of("alice@example.com", "wf-1", "run-1")

    assert run.owner == subjects.owner_token("alice@example.com")
    assert len(run.owner) == 32 and run.owner.isalnum()
    assert run.ingest_subject("node_started") == (
        f"flowstream.ingest.{run.owner}.wf-1.run-1.node_started"
    )
    stored = run.event_subject("node_started")
    assert stored == f"flowstream.events.{run.owner}.wf-1.run-1.node_started"
    assert subjects.parse_event_subject(stored) == subjects.EventAddress(run, "node_started")
    assert subjects.parse_event_subject("flowstream.events.wf.run.node_started") is None
    assert subjects.owner_token("a.b*>") != subjects.owner_token("a.b")


# Conditions


async def test_condition_true_takes_only_the_true_branch() -> None:
    run = run_of(grading(), {"score": 75})

    finished = await run.execute()

    events = run.log.events
    assert started_ids(events) == ["start", "check", "passed", "end_pass"]
    assert finished_nodes(events)["check"].outputs == {"result": True}
    assert finished.status == RunStatus.SUCCEEDED
    assert finished.outputs == {"verdict": "Passed with 75", "ok": True}
    the_finish(events)
    assert_gap_free(events)


async def test_condition_false_takes_only_the_false_branch() -> None:
    run = run_of(grading(), {"score": 30})

    finished = await run.execute()

    events = run.log.events
    assert started_ids(events) == ["start", "check", "failed", "end_fail"]
    assert not {"passed", "end_pass"} & set(finished_nodes(events))
    assert finished.status == RunStatus.SUCCEEDED
    assert finished.outputs == {"verdict": "Failed with 30", "ok": False}
    the_finish(events)


async def test_branches_that_join_run_the_join_once() -> None:
    workflow = definition(
        [
            start(field("score", "number")),
            condition("check", "{{input.score}} >= 60"),
            template("passed", "pass"),
            template("failed", "fail"),
            end(score="{{input.score}}"),
        ],
        [
            connect("start", "check"),
            connect("check", "passed", "CONDITIONAL_TRUE"),
            connect("check", "failed", "CONDITIONAL_FALSE"),
            connect("passed", "end"),
            connect("failed", "end"),
        ],
    )
    run = run_of(workflow, {"score": 10})

    finished = await run.execute()

    assert started_ids(run.log.events) == ["start", "check", "failed", "end"]
    assert finished.outputs == {"score": 10}


# Failures


async def test_a_missing_reference_fails_the_node_and_the_run() -> None:
    workflow = definition(
        [start(), template("greet", "Hi {{input.nickname}}"), template("after", "x"), end()],
        chain("start", "greet", "after", "end"),
    )
    run = run_of(workflow, {"name": "Ada"})

    finished = await run.execute()

    events = run.log.events
    failed = finished_nodes(events)["greet"]
    assert failed.status == NodeStatus.FAILED
    assert failed.error is not None
    assert "nickname" in failed.error
    assert "after" not in started_ids(events)
    assert finished == the_finish(events)
    assert finished.status == RunStatus.FAILED
    assert finished.error == failed.error
    assert finished.outputs is None
    assert_gap_free(events)


async def test_a_condition_comparing_str_to_int_fails_the_run() -> None:
    run = run_of(grading(score_type="string"), {"score": "high"})

    finished = await run.execute()

    events = run.log.events
    failed = finished_nodes(events)["check"]
    assert failed.status == NodeStatus.FAILED
    assert failed.error is not None
    assert "not supported" in failed.error
    assert started_ids(events) == ["start", "check"]
    assert finished.status == RunStatus.FAILED
    assert finished.error == failed.error


async def test_invalid_inputs_fail_the_start_node() -> None:
    run = run_of(greet(), {})

    finished = await run.execute()

    start_node = finished_nodes(run.log.events)["start"]
    assert start_node.status == NodeStatus.FAILED
    assert start_node.error == "name is required in input form"
    assert finished.status == RunStatus.FAILED
    assert finished.error == "name is required in input form"


async def test_a_failure_stops_a_delay_running_beside_it() -> None:
    workflow = definition(
        [start(), delay("slow", 30), template("broken", "{{input.nope}}"), end()],
        [
            connect("start", "slow"),
            connect("start", "broken"),
            connect("slow", "end"),
            connect("broken", "end"),
        ],
    )
    run = run_of(workflow, {})

    finished = await run.execute()

    nodes = finished_nodes(run.log.events)
    assert nodes["broken"].status == NodeStatus.FAILED
    assert nodes["slow"].status == NodeStatus.STOPPED
    assert finished.status == RunStatus.FAILED
    assert finished.error == nodes["broken"].error
    the_finish(run.log.events)


async def test_retry_emits_node_retry_then_fails() -> None:
    workflow = definition(
        [
            start(),
            template("greet", "Hi {{input.nickname}}", retry={"max_attempts": 2, "backoff": 0}),
            end(),
        ],
        chain("start", "greet", "end"),
    )
    run = run_of(workflow, {})

    finished = await run.execute()

    events = run.log.events
    greet_events = [
        event
        for event in events
        if isinstance(event, NodeStarted | NodeRetry | NodeFinished)
        and event.data.node_id == "greet"
    ]
    assert [event.event for event in greet_events] == [
        EventName.NODE_STARTED,
        EventName.NODE_RETRY,
        EventName.NODE_FINISHED,
    ]
    retry, final = greet_events[1], greet_events[2]
    assert isinstance(retry, NodeRetry)
    assert isinstance(final, NodeFinished)
    assert retry.data.retry_index == 1
    assert retry.data.status == NodeStatus.RETRY
    assert retry.data.error is not None
    assert "nickname" in retry.data.error
    assert retry.data.id == final.data.id
    assert final.data.status == NodeStatus.FAILED
    assert finished.status == RunStatus.FAILED
    assert_gap_free(events)


async def test_on_error_continue_records_an_exception_and_goes_on() -> None:
    workflow = definition(
        [
            start(field("name")),
            template("risky", "Hi {{input.nickname}}", on_error="continue"),
            template("after", "Bye {{input.name}}"),
            end(answer="{{after.text}}", problem="{{risky.error}}"),
        ],
        chain("start", "risky", "after", "end"),
    )
    run = run_of(workflow, {"name": "Ada"})

    finished = await run.execute()

    risky = finished_nodes(run.log.events)["risky"]
    assert risky.status == NodeStatus.EXCEPTION
    assert risky.error is not None
    assert risky.outputs == {"error": risky.error}
    assert "after" in started_ids(run.log.events)
    assert finished.status == RunStatus.PARTIAL_SUCCEEDED
    assert finished.error is None
    assert finished.outputs == {"answer": "Bye Ada", "problem": risky.error}


# Stop and deadline


async def test_stop_during_a_delay() -> None:
    run = run_of(delayed(30), {})
    waiting = run.log.seen(node_started("wait"))

    task = asyncio.create_task(run.execute())
    async with asyncio.timeout(PATIENCE):
        await waiting.wait()
    run.executor.request_stop()
    finished = await task

    events = run.log.events
    wait = finished_nodes(events)["wait"]
    assert wait.status == NodeStatus.STOPPED
    assert wait.error == STOPPED_BY_USER
    assert "after" not in started_ids(events)
    assert finished == the_finish(events)
    assert finished.status == RunStatus.STOPPED
    assert finished.error == "Stopped by user."
    assert_gap_free(events)


async def test_a_second_stop_or_failure_does_not_change_the_outcome() -> None:
    run = run_of(delayed(30), {})
    waiting = run.log.seen(node_started("wait"))

    task = asyncio.create_task(run.execute())
    async with asyncio.timeout(PATIENCE):
        await waiting.wait()
    run.executor.request_stop()
    run.executor.request_stop("again")
    run.executor.fail("late failure")
    finished = await task

    assert finished.status == RunStatus.STOPPED
    assert finished.error == STOPPED_BY_USER
    the_finish(run.log.events)


async def test_the_deadline_fails_the_run_promptly() -> None:
    run = run_of(delayed(10), {}, timeout=0.2)

    async with asyncio.timeout(2.0):
        finished = await run.execute()

    events = run.log.events
    wait = finished_nodes(events)["wait"]
    assert wait.status == NodeStatus.FAILED
    assert "after" not in started_ids(events)
    assert finished == the_finish(events)
    assert finished.status == RunStatus.FAILED
    assert finished.error is not None
    assert "timed out" in finished.error
    assert_gap_free(events)


# Concurrency


async def test_independent_branches_run_concurrently() -> None:
    workflow = definition(
        [start(), delay("a", 0.3), delay("b", 0.3), end(a="{{a.seconds}}", b="{{b.seconds}}")],
        [connect("start", "a"), connect("start", "b"), connect("a", "end"), connect("b", "end")],
    )
    run = run_of(workflow, {})

    finished = await run.execute()

    order = [
        (event.event, event.data.node_id)
        for event in run.log.events
        if isinstance(event, NodeStarted | NodeFinished) and event.data.node_id in {"a", "b"}
    ]
    assert {e for e, _ in order[:2]} == {EventName.NODE_STARTED}
    assert {e for e, _ in order[2:]} == {EventName.NODE_FINISHED}
    assert started_ids(run.log.events).count("end") == 1
    assert finished.outputs == {"a": 0.3, "b": 0.3}
    assert finished.status == RunStatus.SUCCEEDED


# Resume


async def test_a_resumed_run_continues_the_log() -> None:
    first = run_of(greet(), {"name": "Ada"})
    await first.execute()
    events = first.log.events
    cut = next(event.seq for event in events if isinstance(event, NodeFinished))
    before = [event for event in events if event.seq <= cut]

    state = RunState.fold(before)
    resumed = prepare(first.command, state)
    finished = await resumed.execute()

    after = resumed.log.events
    combined = [*before, *after]
    assert_gap_free(combined)
    assert not of_type(after, WorkflowStarted)
    assert started_ids(combined).count("start") == 1
    assert started_ids(after) == ["greet", "end"]
    assert [event.data.index for event in of_type(after, NodeStarted)] == [2, 3]
    assert finished == the_finish(combined)
    assert finished.status == RunStatus.SUCCEEDED
    assert finished.outputs == {"answer": "Hello Ada!"}
    assert finished.total_steps == 3


async def test_a_redelivered_finished_run_emits_nothing() -> None:
    first = run_of(greet(), {"name": "Ada"})
    original = await first.execute()

    again = prepare(first.command, RunState.fold(first.log.events))
    finished = await again.execute()

    assert finished == original
    assert again.log.records == []


# Control


async def test_a_cancel_received_before_register_stops_the_run() -> None:
    registry = ControlRegistry()
    run = run_of(delayed(30), {})
    registry.receive(run.command.run_id, ControlCommand(action=ControlAction.CANCEL))

    assert registry.is_cancelled(run.command.run_id)
    registry.register(run.command.run_id, run.executor)
    finished = await run.execute()
    registry.unregister(run.command.run_id)

    assert finished.status == RunStatus.STOPPED
    assert finished.error == STOPPED_BY_USER
    assert "wait" not in started_ids(run.log.events)
    assert registry.active_runs == 0
    the_finish(run.log.events)


async def test_a_cancel_received_while_running_stops_the_run() -> None:
    registry = ControlRegistry()
    run = run_of(delayed(30), {})
    waiting = run.log.seen(node_started("wait"))
    registry.register(run.command.run_id, run.executor)

    task = asyncio.create_task(run.execute())
    async with asyncio.timeout(PATIENCE):
        await waiting.wait()
    registry.receive(run.command.run_id, ControlCommand(action=ControlAction.CANCEL, reason="bye"))
    finished = await task

    assert finished_nodes(run.log.events)["wait"].status == NodeStatus.STOPPED
    assert finished.status == RunStatus.STOPPED
    assert finished.error == "bye"


async def test_a_cancel_for_another_run_changes_nothing() -> None:
    registry = ControlRegistry()
    run = run_of(greet(), {"name": "Ada"})
    registry.receive("someone-else", ControlCommand(action=ControlAction.CANCEL))
    registry.register(run.command.run_id, run.executor)

    finished = await run.execute()

    assert not registry.is_cancelled(run.command.run_id)
    assert finished.status == RunStatus.SUCCEEDED


async def test_the_plan_cache_never_serves_another_definition_under_the_same_name() -> None:
    # A command naming a known workflow id and version but carrying another definition (a forged
    # one, say) gets its own plan: the next honest run still executes the stored definition.
    honest = snapshot(greet())
    forged_definition = greet().model_dump(by_alias=True)
    for node in forged_definition["nodes"]:
        if node["id"] == "greet":
            node["config"]["template"] = "Owned by mallory"
    forged = WorkflowSnapshot(
        workflow_id=honest.workflow_id,
        version=honest.version,
        definition=WorkflowDefinition.model_validate(forged_definition),
    )
    assert plan_for(forged) is not plan_for(honest)
    assert plan_for(honest) is plan_for(honest)
    command = command_for(greet(), {"name": "Ada"}).model_copy(update={"workflow": honest})
    assert (await prepare(command).execute()).outputs == {"answer": "Hello Ada!"}
