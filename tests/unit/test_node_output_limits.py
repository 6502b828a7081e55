"""A node's outputs over the limit fail the node at once, before its `node_finished` is built.

Events over NATS's payload limit used to leave a run `running` with holes in `seq`: the check now
happens where a node's result becomes its event, so the run ends normally, gap-free, once.
"""

from __future__ import annotations

import json

import httpx
from flowstream_engine.limits import RunLimits
from flowstream_shared.events import NodeStatus, RunStatus

from tests.unit.builders import (
    api_call,
    chain,
    connect,
    definition,
    end,
    field,
    parallel,
    start,
    template,
)
from tests.unit.runs import assert_gap_free, finished_nodes, run_of, the_finish

SMALL = RunLimits(node_output_max_bytes=4096)
TEXT = "y" * 3_000  # under the limit as an input; twice over it once doubled
TWICE = "{{input.text}}{{input.text}}"


async def test_outputs_over_the_limit_fail_the_node_naming_it() -> None:
    workflow = definition(
        [start(field("text")), template("big", TWICE), end(answer="{{big.text}}")],
        chain("start", "big", "end"),
    )
    run = run_of(workflow, {"text": TEXT}, limits=SMALL)

    finished = await run.execute()

    node = finished_nodes(run.log.events)["big"]
    assert node.status == NodeStatus.FAILED and node.outputs is None
    assert node.error is not None
    assert "over the node output limit of 4,096 bytes" in node.error
    assert "FLOWSTREAM_NODE_OUTPUT_MAX_BYTES" in node.error
    assert finished.status == RunStatus.FAILED and finished.error == node.error
    assert_gap_free(run.log.events)
    assert the_finish(run.log.events) == finished


async def test_an_oversized_output_is_a_handled_error_under_on_error_continue() -> None:
    workflow = definition(
        [
            start(field("text")),
            template("big", TWICE, on_error="continue"),
            end(answer="{{big.error}}"),
        ],
        chain("start", "big", "end"),
    )
    run = run_of(workflow, {"text": TEXT}, limits=SMALL)

    finished = await run.execute()

    node = finished_nodes(run.log.events)["big"]
    assert node.status == NodeStatus.EXCEPTION
    assert node.outputs is not None and "output limit" in node.outputs["error"]
    assert finished.status == RunStatus.PARTIAL_SUCCEEDED
    assert_gap_free(run.log.events)


async def test_a_template_stops_rendering_at_the_output_limit() -> None:
    workflow = definition(
        [start(field("text")), template("big", "{{input.text}}" * 100), end(answer="{{big.text}}")],
        chain("start", "big", "end"),
    )
    run = run_of(workflow, {"text": TEXT * 3})

    finished = await run.execute()

    error = finished_nodes(run.log.events)["big"].error
    assert error is not None and "template output exceeds 262,144 characters" in error
    assert finished.status == RunStatus.FAILED


async def test_recorded_inputs_over_the_limit_are_summarized_not_failed() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"ok": True})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        workflow = definition(
            [
                start(field("text")),
                api_call("post", "https://api.example.com/x", method="POST", body={"t": TWICE}),
                end(answer="{{post.status_code}}"),
            ],
            chain("start", "post", "end"),
        )
        run = run_of(workflow, {"text": TEXT}, http=client, limits=SMALL)
        finished = await run.execute()

    node = finished_nodes(run.log.events)["post"]
    assert node.status == NodeStatus.SUCCEEDED and finished.status == RunStatus.SUCCEEDED
    assert node.inputs is not None and len(json.dumps(node.inputs)) <= 4096
    assert node.execution_metadata is not None and node.execution_metadata["inputs_truncated"]


async def test_outputs_of_several_ends_over_the_limit_fail_the_run() -> None:
    half = "z" * 3_000
    workflow = definition(
        [
            start(field("text")),
            parallel("fan"),
            end("left", a="{{input.text}}"),
            end("right", b="{{input.text}}"),
        ],
        [
            connect("start", "fan"),
            connect("fan", "left", "PARALLEL"),
            connect("fan", "right", "PARALLEL"),
        ],
    )
    run = run_of(workflow, {"text": half}, limits=SMALL)

    finished = await run.execute()

    assert finished.status == RunStatus.FAILED and finished.outputs is None
    assert finished.error is not None and "the run's outputs are" in finished.error
    assert_gap_free(run.log.events)
