"""PARALLEL, LOOP, `on_error` and CONDITION over the whole stack, their work done by a real peer.

The branches and loop bodies are API_CALLs to the peer of tests/e2e/peers.py, so what ran, how
often, in which order and how many at once is seen from outside the engine as well as in the
events. Concurrency is observed, never timed: a peer barrier only lets calls through in pairs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.e2e.conftest import Stack
from tests.e2e.peers import Peer, http_peer
from tests.e2e.test_nodes_http import (
    USER,
    Event,
    finish,
    finished,
    key,
    of,
    position,
    run,
    started_nodes,
    stream_run,
    workflow,
)
from tests.unit.builders import (
    Spec,
    api_call,
    chain,
    condition,
    connect,
    end,
    field,
    loop,
    parallel,
    start,
    template,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def peer() -> AsyncIterator[Peer]:
    async with http_peer() as serving:
        yield serving


# PARALLEL


def open_branches(events: list[Event], parallel_id: str) -> tuple[int, list[tuple[str, str]]]:
    """The most branches of `parallel_id` running at once by the event order, and the order
    of the branch events as (event, start node)."""
    running: set[str] = set()
    peak = 0
    order: list[tuple[str, str]] = []
    for event in events:
        if not event["event"].startswith("parallel_branch_"):
            continue
        data = event["data"]
        if data["parallel_id"] != parallel_id:
            continue
        branch = data["parallel_start_node_id"]
        order.append((event["event"].removeprefix("parallel_branch_"), branch))
        if event["event"] == "parallel_branch_started":
            running.add(branch)
            peak = max(peak, len(running))
        else:
            running.discard(branch)
    return peak, order


async def test_max_concurrent_lets_two_branches_run_at_once_and_the_join_waits_for_all(
    stack: Stack, peer: Peer
) -> None:
    meeting = key()
    branches = ["a", "b", "c", "d"]
    # Each branch calls a barrier that answers only when two calls are in flight together:
    # with max_concurrent 2 they pair up (a+b, then c+d); with 1 they would never meet.
    calls = [api_call(b, f"{peer.url}/meet/{meeting}", query={"size": 2}) for b in branches]
    join = template("join", "".join(f"{{{{{b}.body.met}}}}" for b in branches))
    definition = workflow(
        [start(), parallel("fan", max_concurrent=2), *calls, join, end(all="{{join.text}}")],
        [
            connect("start", "fan"),
            *(connect("fan", b, "PARALLEL") for b in branches),
            *(connect(b, "join") for b in branches),
            connect("join", "end"),
        ],
    )
    events = await run(stack, definition)

    assert finish(events)["status"] == "succeeded", finish(events)["error"]
    assert finish(events)["outputs"] == {"all": "truetruetruetrue"}
    assert peer.peak_in_flight(meeting) == 2  # seen by the peer: two at once, never more
    assert len(peer.received(f"/meet/{meeting}")) == 4

    peak, order = open_branches(events, "fan")
    assert peak == 2
    assert [b for kind, b in order if kind == "started"] == branches  # in connection order
    first_done = next(i for i, (kind, _) in enumerate(order) if kind == "finished")
    assert order.index(("started", "c")) > first_done  # c waited for a running one to end
    assert order.index(("started", "d")) > first_done
    for data in of(events, "parallel_branch_finished"):
        assert data["status"] == "succeeded" and data["error"] is None
    for data in [*of(events, "parallel_branch_started"), *of(events, "parallel_branch_finished")]:
        assert data["parallel_id"] == "fan" and data["parent_parallel_id"] is None
    for branch in branches:
        node = finished(events, branch)
        assert node["execution_metadata"]["parallel_id"] == "fan"
        assert node["execution_metadata"]["parallel_start_node_id"] == branch
        # Each branch's events bracket its node's.
        assert position_of_branch(events, "started", branch) < position(
            events, "node_started", branch
        )
        assert position(events, "node_finished", branch) < position_of_branch(
            events, "finished", branch
        )
    # wait_for_all (the default): the join starts once every branch has finished.
    last_branch_end = max(
        i for i, e in enumerate(events) if e["event"] == "parallel_branch_finished"
    )
    assert position(events, "node_started", "join") > last_branch_end


def position_of_branch(events: list[Event], kind: str, branch: str) -> int:
    return next(
        i
        for i, e in enumerate(events)
        if e["event"] == f"parallel_branch_{kind}" and e["data"]["parallel_start_node_id"] == branch
    )


async def test_without_wait_for_all_the_first_branch_wins_and_the_others_are_stopped(
    stack: Stack, peer: Peer
) -> None:
    hold = key()
    definition = workflow(
        [
            start(),
            parallel("race", wait_for_all=False),
            api_call("slow", f"{peer.url}/hold/{hold}"),  # never answers by itself
            api_call("quick", f"{peer.url}/when/{hold}"),  # answers once `slow` is in flight
            template("join", "first one wins"),
            end(result="{{join.text}}"),
        ],
        [
            connect("start", "race"),
            connect("race", "slow", "PARALLEL"),
            connect("race", "quick", "PARALLEL"),
            connect("slow", "join"),
            connect("quick", "join"),
            connect("join", "end"),
        ],
    )
    events = await run(stack, definition)

    assert finish(events)["status"] == "succeeded", finish(events)["error"]
    assert finish(events)["outputs"] == {"result": "first one wins"}
    lost = "another branch of PARALLEL `race` finished first"
    slow = finished(events, "slow")
    assert (slow["status"], slow["error"]) == ("stopped", lost)
    assert finished(events, "quick")["status"] == "succeeded"
    ends = {d["parallel_start_node_id"]: d for d in of(events, "parallel_branch_finished")}
    assert (ends["quick"]["status"], ends["quick"]["error"]) == ("succeeded", None)
    assert (ends["slow"]["status"], ends["slow"]["error"]) == ("stopped", lost)
    assert started_nodes(events).count("join") == 1
    assert position(events, "node_finished", "slow") < position(events, "node_started", "join")
    await peer.gone.wait(hold)  # the losing branch's request was aborted


# LOOP


def polling(peer: Peer, job: str, max_iterations: int, done_after: int) -> Spec:
    """START → poll (LOOP: check → note → back) → END; `check` asks the peer for the job's
    state with `?i={{loop.index}}`; the loop goes on while it is not done."""
    return workflow(
        [
            start(),
            loop("poll", max_iterations, condition="{{check.body.state}} != 'done'"),
            api_call(
                "check",
                f"{peer.url}/job/{job}",
                query={"i": "{{loop.index}}", "done_after": done_after},
            ),
            template("note", "poll {{loop.index}}: {{check.body.state}}"),
            end(
                iterations="{{poll.iterations}}",
                errors="{{poll.errors}}",
                last="{{note.text}}",
            ),
        ],
        [
            connect("start", "poll"),
            connect("poll", "check", "LOOP"),
            connect("check", "note"),
            connect("note", "poll"),
            connect("poll", "end"),
        ],
    )


@pytest.mark.parametrize(
    ("max_iterations", "done_after", "iterations", "state"),
    [
        (10, 3, 3, "done"),  # the condition ends the loop
        (2, 5, 2, "running"),  # max_iterations ends it first
    ],
)
async def test_a_loop_polls_until_its_condition_or_max_iterations_ends_it(
    stack: Stack,
    peer: Peer,
    max_iterations: int,
    done_after: int,
    iterations: int,
    state: str,
) -> None:
    job = key()
    events = await run(stack, polling(peer, job, max_iterations, done_after))

    assert finish(events)["status"] == "succeeded", finish(events)["error"]
    assert finish(events)["outputs"] == {
        "iterations": iterations,
        "errors": [],
        "last": f"poll {iterations - 1}: {state}",
    }
    assert [r.query["i"] for r in peer.received(f"/job/{job}")] == [
        str(i) for i in range(iterations)
    ]

    (began,) = of(events, "loop_started")
    assert began["node_id"] == "poll"
    assert began["metadata"] == {"loop_length": max_iterations}
    nexts = of(events, "loop_next")
    assert [n["index"] for n in nexts] == list(range(1, iterations))
    assert all(n["id"] == began["id"] for n in nexts)
    # pre_loop_output: what the previous iteration's body nodes output.
    assert nexts[0]["pre_loop_output"]["note"] == {"text": "poll 0: running"}
    (completed,) = of(events, "loop_completed")
    assert completed["status"] == "succeeded"
    assert completed["outputs"] == {"iterations": iterations, "errors": []}
    assert completed["steps"] == iterations

    # node_started(poll) < loop_started < body … < loop_completed < node_finished(poll)
    assert (
        position(events, "node_started", "poll")
        < position(events, "loop_started")
        < position(events, "node_started", "check")
    )
    assert position(events, "loop_completed") < position(events, "node_finished", "poll")
    assert position(events, "node_finished", "poll") < position(events, "node_started", "end")
    body = [
        e["data"]["execution_metadata"]
        for e in events
        if e["event"] == "node_finished" and e["data"]["node_id"] == "check"
    ]
    assert body == [{"loop_id": "poll", "loop_index": i} for i in range(iterations)]
    # total_steps counts every node execution: start, poll, 2 per iteration, end.
    assert finish(events)["total_steps"] == 3 + 2 * iterations


def breaking(peer: Peer, path: str, break_on_error: bool) -> Spec:
    """A LOOP of 3 whose body's API_CALL fails in iteration 1."""
    return workflow(
        [
            start(),
            loop("rep", 3, break_on_error=break_on_error),
            api_call("step", f"{peer.url}{path}/{{{{loop.index}}}}", query={"at": 1}),
            end(iterations="{{rep.iterations}}", errors="{{rep.errors}}"),
        ],
        [
            connect("start", "rep"),
            connect("rep", "step", "LOOP"),
            connect("step", "rep"),
            connect("rep", "end"),
        ],
    )


async def test_break_on_error_fails_the_loop_at_the_failing_iteration(
    stack: Stack, peer: Peer
) -> None:
    path = f"/fails/{key()}"
    events = await run(stack, breaking(peer, path, break_on_error=True))

    error = f"iteration 1, node `step`: GET {peer.url}{path}/1 answered HTTP 500: iteration 1 broke"
    assert [r.path for r in peer.received(path)] == [f"{path}/0", f"{path}/1"]
    assert [d["index"] for d in of(events, "loop_next")] == [1]
    (completed,) = of(events, "loop_completed")
    assert (completed["status"], completed["error"]) == ("failed", error)
    rep = finished(events, "rep")
    assert (rep["status"], rep["error"]) == ("failed", error)
    assert finish(events)["status"] == "failed"
    assert finish(events)["error"] == error
    assert "end" not in started_nodes(events)


async def test_without_break_on_error_the_loop_records_the_error_and_goes_on(
    stack: Stack, peer: Peer
) -> None:
    path = f"/fails/{key()}"
    events = await run(stack, breaking(peer, path, break_on_error=False))

    error = f"iteration 1, node `step`: GET {peer.url}{path}/1 answered HTTP 500: iteration 1 broke"
    assert [r.path for r in peer.received(path)] == [f"{path}/{i}" for i in range(3)]
    assert [d["index"] for d in of(events, "loop_next")] == [1, 2]
    statuses = [
        e["data"]["status"]
        for e in events
        if e["event"] == "node_finished" and e["data"]["node_id"] == "step"
    ]
    assert statuses == ["succeeded", "failed", "succeeded"]
    assert finished(events, "rep")["outputs"] == {"iterations": 3, "errors": [error]}
    assert finish(events)["status"] == "partial-succeeded"
    assert finish(events)["outputs"] == {"iterations": 3, "errors": [error]}


# on_error


async def test_on_error_continue_takes_the_normal_edges_and_the_run_partially_succeeds(
    stack: Stack, peer: Peer
) -> None:
    url = f"{peer.url}/status/502/{key()}"
    definition = workflow(
        [
            start(),
            api_call("call", url, on_error="continue"),
            template("after", "went on after: {{call.error}}"),
            end(result="{{after.text}}"),
        ],
        chain("start", "call", "after", "end"),
    )
    events = await run(stack, definition)

    node = finished(events, "call")
    assert node["status"] == "exception"
    assert node["error"].startswith(f"GET {url} answered HTTP 502: status 502: detail")
    assert node["outputs"] == {"error": node["error"]}
    assert started_nodes(events) == ["start", "call", "after", "end"]
    assert finish(events)["status"] == "partial-succeeded"
    assert finish(events)["error"] is None
    assert finish(events)["outputs"] == {"result": f"went on after: {node['error']}"}


async def test_on_error_branches_to_the_named_node_instead_of_the_normal_edges(
    stack: Stack, peer: Peer
) -> None:
    url = f"{peer.url}/status/404/{key()}"
    definition = workflow(
        [
            start(),
            api_call("call", url, on_error="fallback"),
            template("after", "normal path"),
            template("fallback", "fallback path"),
            end(why="{{call.error}}"),
        ],
        [*chain("start", "call", "after", "end"), connect("fallback", "end")],
    )
    events = await run(stack, definition)

    assert finished(events, "call")["status"] == "exception"
    assert "after" not in started_nodes(events)
    fallback = next(
        e["data"]
        for e in events
        if e["event"] == "node_started" and e["data"]["node_id"] == "fallback"
    )
    assert fallback["predecessor_node_id"] == "call"
    assert finished(events, "fallback")["outputs"] == {"text": "fallback path"}
    assert finish(events)["status"] == "partial-succeeded"
    assert finish(events)["outputs"]["why"].startswith(f"GET {url} answered HTTP 404")


# CONDITION operators, over inputs and over what a peer answered


def deciding(peer: Peer, expression: str) -> Spec:
    """START → profile (API_CALL) → check → yes | no, each to its own END."""
    return workflow(
        [
            start(field("uid"), field("role"), field("tags", "array")),
            api_call("profile", f"{peer.url}/users/{{{{input.uid}}}}"),
            condition("check", expression),
            template("yes", "yes"),
            template("no", "no"),
            end("end_yes", branch="{{yes.text}}", result="{{check.result}}"),
            end("end_no", branch="{{no.text}}", result="{{check.result}}"),
        ],
        [
            *chain("start", "profile", "check"),
            connect("check", "yes", "CONDITIONAL_TRUE"),
            connect("check", "no", "CONDITIONAL_FALSE"),
            connect("yes", "end_yes"),
            connect("no", "end_no"),
        ],
    )


@pytest.mark.parametrize(
    ("expression", "true_inputs", "false_inputs"),
    [
        ("{{input.tags}} contains 'vip'", {"tags": ["new", "vip"]}, {"tags": ["new"]}),
        ("{{profile.body.user}} contains 'nickname'", {}, None),  # a key of an object
        ("{{profile.body.user.name}} contains 'Love'", {}, None),  # a substring
        ("{{input.tags}} not contains 'vip'", {"tags": []}, {"tags": ["vip"]}),
        ("{{input.role}} in ['admin', 'owner']", {"role": "owner"}, {"role": "guest"}),
        ("'admin' in {{profile.body.user.roles}}", {"uid": "u1"}, {"uid": "anon-1"}),
        ("{{profile.body.user.nickname}} is null", {"uid": "anon-2"}, {"uid": "u2"}),
        ("{{profile.body.user.nickname}} is not null", {"uid": "u3"}, {"uid": "anon-3"}),
        ("{{input.tags}} is not empty", {"tags": ["x"]}, {"tags": []}),
        ("{{profile.body.user.roles}} is empty", {"uid": "anon-4"}, {"uid": "u4"}),
    ],
)
async def test_condition_operators_choose_the_branch(
    stack: Stack,
    peer: Peer,
    expression: str,
    true_inputs: dict[str, Any],
    false_inputs: dict[str, Any] | None,
) -> None:
    workflow_id = await stack.create_workflow(USER, deciding(peer, expression))
    base = {"uid": "u0", "role": "guest", "tags": []}
    cases = [(true_inputs, True)] + ([(false_inputs, False)] if false_inputs is not None else [])
    for inputs, expected in cases:
        events = await stream_run(stack, workflow_id, {**base, **inputs})
        assert finish(events)["status"] == "succeeded", finish(events)["error"]
        branch = "yes" if expected else "no"
        assert finish(events)["outputs"] == {"branch": branch, "result": expected}, inputs
        assert finished(events, "check")["outputs"] == {"result": expected}
        skipped = "no" if expected else "yes"
        assert skipped not in started_nodes(events)


async def test_is_null_holds_for_an_optional_input_that_was_not_given(stack: Stack) -> None:
    definition = workflow(
        [
            start(field("nick")),
            condition("check", "{{input.nick}} is null"),
            template("yes", "anonymous"),
            template("no", "named"),
            end("end_yes", who="{{yes.text}}"),
            end("end_no", who="{{no.text}}"),
        ],
        [
            connect("start", "check"),
            connect("check", "yes", "CONDITIONAL_TRUE"),
            connect("check", "no", "CONDITIONAL_FALSE"),
            connect("yes", "end_yes"),
            connect("no", "end_no"),
        ],
    )
    events = await run(stack, definition, {"nick": None})

    assert finish(events)["outputs"] == {"who": "anonymous"}
