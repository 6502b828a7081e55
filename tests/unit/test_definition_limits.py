"""Definitions are checked in bounded time and memory, and refused past their limits.

A 4,000-node chain once took 8 s and a gigabyte to check (a set of ancestors per node); a PARALLEL
with 6,500 branches took over a minute (each pair of branches walked again). The checks are now
linear in the definition: these tests bound their cost with room for a slow machine.
"""

from __future__ import annotations

import time
import tracemalloc
from typing import Any

import pytest
from flowstream_gateway.errors import ApiError
from flowstream_gateway.workflow_checks import WorkflowLimits, assess
from flowstream_shared.validation import (
    DefinitionError,
    DefinitionLimits,
    check_definition_limits,
    validate_definition,
)
from flowstream_shared.workflow import WorkflowDefinition

from tests.unit.builders import (
    chain,
    connect,
    definition,
    end,
    field,
    parallel,
    start,
    template,
)

UNLIMITED = DefinitionLimits(max_nodes=100_000, max_connections=100_000, max_fan_out=100_000)


def long_chain(size: int) -> WorkflowDefinition:
    steps = [
        template(f"t{i}", f"{{{{t{i - 1}.text}}}}" if i > 1 else "{{input.name}}")
        for i in range(1, size - 1)
    ]
    ids = ["start", *(s["id"] for s in steps), "end"]
    return definition(
        [start(field("name")), *steps, end(answer=f"{{{{t{size - 2}.text}}}}")], chain(*ids)
    )


def wide_parallel(branches: int) -> WorkflowDefinition:
    nodes = [start(), parallel("fan"), end()]
    connections = [connect("start", "fan")]
    for i in range(branches):
        nodes.append(template(f"b{i}", "x"))
        connections += [connect("fan", f"b{i}", "PARALLEL"), connect(f"b{i}", "end")]
    return definition(nodes, connections)


def test_a_long_chain_is_checked_in_linear_time_and_memory() -> None:
    workflow = long_chain(2_500)
    tracemalloc.start()
    started = time.process_time()
    try:
        validate_definition(workflow, limits=UNLIMITED)
        elapsed = time.process_time() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 10.0  # about 0.2 s untraced; was 3-4 s (8 s at 4,000 nodes)
    assert peak < 100 << 20  # was about 400 MB (1 GB at 4,000 nodes)


def test_a_wide_parallel_is_checked_in_linear_time() -> None:
    workflow = wide_parallel(6_500)
    started = time.process_time()
    validate_definition(workflow, limits=UNLIMITED)
    assert time.process_time() - started < 5.0  # about 0.15 s; was 91 s


def test_branches_that_meet_are_still_refused() -> None:
    workflow = wide_parallel(3)
    data = workflow.model_dump(by_alias=True)
    data["connections"].append({"from": "b0", "to": "b1", "type": "SEQUENCE"})
    with pytest.raises(DefinitionError, match="branch `b1` is also reached from branch `b0`"):
        validate_definition(WorkflowDefinition.model_validate(data))


@pytest.mark.parametrize(
    ("workflow", "limits", "message"),
    [
        (long_chain(50), DefinitionLimits(max_nodes=40), "50 nodes; the limit is 40"),
        (long_chain(50), DefinitionLimits(max_connections=10), "49 connections; the limit is 10"),
        (wide_parallel(20), DefinitionLimits(max_fan_out=8), "`fan`: has 20 outgoing"),
    ],
)
def test_a_definition_past_a_limit_is_refused_naming_it(
    workflow: WorkflowDefinition, limits: DefinitionLimits, message: str
) -> None:
    with pytest.raises(DefinitionError, match=message):
        check_definition_limits(workflow, limits)
    with pytest.raises(DefinitionError, match=message):
        validate_definition(workflow, limits=limits)


def _refusal(call: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value


def test_the_gateway_refuses_a_large_definition_even_as_a_draft() -> None:
    big = definition([start(), template("t", "x" * 60_000)], [])
    refused = _refusal(
        lambda: assess(big, allow_draft=True, limits=WorkflowLimits(max_definition_bytes=50_000))
    )
    assert refused.status == 413 and refused.code == "payload_too_large"
    assert "the limit is 50,000 (FLOWSTREAM_MAX_DEFINITION_BYTES)" in refused.message

    many = long_chain(30)
    limits = WorkflowLimits(definition=DefinitionLimits(max_nodes=20))
    refused = _refusal(lambda: assess(many, allow_draft=True, limits=limits))
    assert refused.status == 400 and "FLOWSTREAM_MAX_NODES" in refused.message


def test_raised_limits_let_larger_definitions_through() -> None:
    workflow = long_chain(2_500)  # over the default of 2,000 nodes
    limits = WorkflowLimits(definition=DefinitionLimits(max_nodes=3_000))
    assert assess(workflow, allow_draft=False, limits=limits) == []
    assert _refusal(lambda: assess(workflow, allow_draft=False)).status == 400
