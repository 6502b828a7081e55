"""`on_error` branching to a node, retries with exponential backoff, stops during a backoff."""

from __future__ import annotations

import asyncio

import pytest
from flowstream_engine.run import node as node_module
from flowstream_shared.events import (
    EventName,
    NodeFinished,
    NodeRetry,
    NodeStarted,
    NodeStatus,
    RunStatus,
)
from flowstream_shared.validation import validate_definition
from flowstream_shared.workflow import WorkflowDefinition

from tests.unit.builders import (
    chain,
    connect,
    definition,
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
    run_of,
    started_ids,
    the_finish,
)


def with_fallback(greeting: str = "Hi {{input.name}}") -> WorkflowDefinition:
    """risky → after → end_ok normally; risky ─on_error→ fallback → end_err when it fails."""
    workflow = definition(
        [
            start(field("name"), field("nickname")),
            template("risky", greeting, on_error="fallback"),
            template("after", "after {{risky.text}}"),
            template("fallback", "fell back: {{risky.error}}"),
            end("end_ok", answer="{{after.text}}"),
            end("end_err", answer="{{fallback.text}}"),
        ],
        [*chain("start", "risky", "after", "end_ok"), connect("fallback", "end_err")],
    )
    validate_definition(workflow)
    return workflow


async def test_on_error_branches_to_the_named_node() -> None:
    run = run_of(with_fallback("Hi {{input.nickname.first}}"), {"name": "Ada", "nickname": "A"})

    finished = await run.execute()

    events = run.log.events
    nodes = finished_nodes(events)
    risky = nodes["risky"]
    assert risky.status == NodeStatus.EXCEPTION
    assert risky.error is not None
    assert risky.outputs == {"error": risky.error}
    assert "after" not in started_ids(events)  # the normal edges are not taken
    assert "end_ok" not in started_ids(events)
    assert nodes["fallback"].predecessor_node_id == "risky"
    assert finished.status == RunStatus.PARTIAL_SUCCEEDED
    assert finished.error is None
    assert finished.outputs == {"answer": f"fell back: {risky.error}"}
    assert finished.exceptions_count == 1  # Dify's count of handled node errors
    assert finished.created_by == {"id": "user-1", "name": "user-1", "email": None}
    assert_gap_free(events)
    the_finish(events)


async def test_the_error_branch_is_skipped_when_the_node_succeeds() -> None:
    run = run_of(with_fallback(), {"name": "Ada"})

    finished = await run.execute()

    assert started_ids(run.log.events) == ["start", "risky", "after", "end_ok"]
    assert finished.status == RunStatus.SUCCEEDED
    assert finished.outputs == {"answer": "after Hi Ada"}
    assert finished.exceptions_count == 0


async def test_an_error_branch_and_the_normal_path_may_join() -> None:
    workflow = definition(
        [
            start(field("name")),
            template("risky", "{{input.name.first}}", on_error="fallback"),
            template("fallback", "anonymous"),
            end(done="yes"),
        ],
        [connect("start", "risky"), connect("risky", "end"), connect("fallback", "end")],
    )
    validate_definition(workflow)

    run = run_of(workflow, {"name": "Ada"})
    finished = await run.execute()

    assert started_ids(run.log.events) == ["start", "risky", "fallback", "end"]
    assert finished.status == RunStatus.PARTIAL_SUCCEEDED


async def test_an_error_branch_inside_a_loop_body() -> None:
    workflow = definition(
        [
            start(field("items", "array")),
            loop("rep", 3),
            template("pick", "{{input.items[loop.index]}}", on_error="missing"),
            template("missing", "none at {{loop.index}}"),
            template("after", "{{rep.iterations}}"),
            end(answer="{{after.text}}"),
        ],
        [
            connect("start", "rep"),
            connect("rep", "pick", "LOOP"),
            connect("pick", "rep"),
            connect("missing", "rep"),
            connect("rep", "after"),
            connect("after", "end"),
        ],
    )
    validate_definition(workflow)
    run = run_of(workflow, {"items": ["a"]})

    finished = await run.execute()

    missing = [
        e.data.outputs for e in of_type(run.log.events, NodeFinished) if e.data.node_id == "missing"
    ]
    assert missing == [{"text": "none at 1"}, {"text": "none at 2"}]
    assert finished.status == RunStatus.PARTIAL_SUCCEEDED
    assert finished.outputs == {"answer": "3"}


async def test_retries_back_off_exponentially(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []

    async def no_wait(stopped: asyncio.Event, seconds: float) -> bool:
        waits.append(seconds)
        return False

    monkeypatch.setattr(node_module, "_stopped_within", no_wait)
    workflow = definition(
        [
            start(),
            template("flaky", "{{input.nope}}", retry={"max_attempts": 4, "backoff": 0.5}),
            end(),
        ],
        chain("start", "flaky", "end"),
    )
    run = run_of(workflow, {})

    finished = await run.execute()

    assert waits == [0.5, 1.0, 2.0]
    kinds = [
        (e.event, getattr(e.data, "retry_index", None))
        for e in run.log.events
        if isinstance(e, NodeStarted | NodeRetry | NodeFinished) and e.data.node_id == "flaky"
    ]
    assert kinds == [
        (EventName.NODE_STARTED, None),
        (EventName.NODE_RETRY, 1),
        (EventName.NODE_RETRY, 2),
        (EventName.NODE_RETRY, 3),
        (EventName.NODE_FINISHED, None),
    ]
    assert finished.status == RunStatus.FAILED


async def test_the_workflow_retry_count_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_wait(stopped: asyncio.Event, seconds: float) -> bool:
        return False

    monkeypatch.setattr(node_module, "_stopped_within", no_wait)
    workflow = definition(
        [start(), template("flaky", "{{input.nope}}"), end()],
        chain("start", "flaky", "end"),
        config={"retry_count": 2},
    )
    run = run_of(workflow, {})

    await run.execute()

    assert len(of_type(run.log.events, NodeRetry)) == 2


async def test_a_stop_ends_a_retry_backoff_at_once() -> None:
    workflow = definition(
        [
            start(),
            template("flaky", "{{input.nope}}", retry={"max_attempts": 3, "backoff": 30}),
            end(),
        ],
        chain("start", "flaky", "end"),
    )
    run = run_of(workflow, {})
    retried = run.log.seen(lambda e: isinstance(e, NodeRetry))

    task = asyncio.create_task(run.execute())
    async with asyncio.timeout(PATIENCE):
        await retried.wait()
    run.executor.request_stop()
    async with asyncio.timeout(2):
        finished = await task

    flaky = finished_nodes(run.log.events)["flaky"]
    assert flaky.status == NodeStatus.STOPPED
    assert finished.status == RunStatus.STOPPED
    assert len(of_type(run.log.events, NodeRetry)) == 1
    the_finish(run.log.events)


async def test_a_cancel_before_the_run_starts_runs_no_node() -> None:
    run = run_of(with_fallback(), {"name": "Ada"})
    run.executor.request_stop()

    finished = await run.execute()

    assert started_ids(run.log.events) == []
    assert finished.status == RunStatus.STOPPED
    assert node_started("start")(run.log.events[0]) is False
