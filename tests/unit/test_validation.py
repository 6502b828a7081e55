"""Definition validation: a sound definition passes, every rejection names the node at fault."""

from __future__ import annotations

from typing import Any

import pytest
from flowstream_shared.validation import DefinitionError, validate_definition
from flowstream_shared.workflow import WorkflowDefinition
from pydantic import ValidationError

from tests.unit.builders import (
    GREET,
    Spec,
    chain,
    condition,
    connect,
    definition,
    delay,
    end,
    field,
    node,
    start,
    template,
)


def rejection(workflow: WorkflowDefinition) -> DefinitionError:
    with pytest.raises(DefinitionError) as caught:
        validate_definition(workflow)
    return caught.value


def assert_names(error: DefinitionError, node_id: str) -> None:
    assert error.node_id == node_id, str(error)
    assert f"`{node_id}`" in str(error)


def greet_with(greeting: str) -> WorkflowDefinition:
    """START(name) → greet → end, with `greet` rendering `greeting`."""
    return definition(
        [
            start(field("name", required=True)),
            template("greet", greeting),
            end(answer="{{greet.text}}"),
        ],
        chain("start", "greet", "end"),
    )


def branching(expression: str = "{{input.score}} >= 60") -> list[Spec]:
    """START(score) → check, whose branches lead to `passed` and `failed` (wired by BRANCHES)."""
    return [
        start(field("score", "number")),
        condition("check", expression),
        template("passed", "pass"),
        template("failed", "fail"),
    ]


BRANCHES = [
    connect("start", "check"),
    connect("check", "passed", "CONDITIONAL_TRUE"),
    connect("check", "failed", "CONDITIONAL_FALSE"),
]


# Sound definitions


def test_the_design_example_passes() -> None:
    workflow = WorkflowDefinition.model_validate(GREET)

    assert validate_definition(workflow) is workflow


def test_branches_delays_and_runtime_references_pass() -> None:
    workflow = definition(
        [
            *branching(),
            delay("wait", 0.5),
            end(
                "end_pass",
                verdict="{{passed.text}}",
                run="{{execution.id}}",
                user="{{sys.user_id}}",
            ),
            end(
                "end_fail",
                verdict="{{failed.text}}",
                score="{{input.score}}",
                ok="{{check.result}}",
            ),
        ],
        [*BRANCHES, *chain("passed", "wait", "end_pass"), connect("failed", "end_fail")],
    )

    validate_definition(workflow)


def test_a_fan_out_that_joins_passes() -> None:
    workflow = definition(
        [start(), delay("a", 1), delay("b", 1), end(a="{{a.seconds}}", b="{{b.seconds}}")],
        [connect("start", "a"), connect("start", "b"), connect("a", "end"), connect("b", "end")],
    )

    validate_definition(workflow)


def test_a_plugin_type_passes_when_the_engine_has_it() -> None:
    workflow = definition(
        [start(), node("shout", "SHOUT", {"anything": 1}), end()], chain("start", "shout", "end")
    )

    assert_names(rejection(workflow), "shout")
    validate_definition(workflow, plugin_types={"SHOUT"})


def test_on_error_naming_a_node_passes() -> None:
    workflow = definition(
        [
            start(),
            template("risky", "x", on_error="fallback"),
            template("fallback", "{{risky.error}}"),
            end(),
        ],
        [*chain("start", "risky", "end"), connect("fallback", "end")],
    )

    validate_definition(workflow)


def test_on_error_naming_the_node_itself() -> None:
    workflow = definition(
        [start(), template("risky", "x", on_error="risky"), end()],
        chain("start", "risky", "end"),
    )

    error = rejection(workflow)

    assert_names(error, "risky")
    assert "itself" in str(error)


def test_on_error_naming_start() -> None:
    workflow = definition(
        [start(), template("risky", "x", on_error="start"), end()],
        chain("start", "risky", "end"),
    )

    assert_names(rejection(workflow), "risky")


def test_the_error_output_is_known_only_with_on_error() -> None:
    workflow = definition(
        [start(), template("risky", "x"), end(problem="{{risky.error}}")],
        chain("start", "risky", "end"),
    )

    error = rejection(workflow)

    assert_names(error, "end")
    assert "risky.error" in str(error)


# Structure


def test_unknown_node_type() -> None:
    workflow = definition(
        [start(), node("mystery", "TELEPORT"), end()], chain("start", "mystery", "end")
    )

    error = rejection(workflow)

    assert_names(error, "mystery")
    assert "unknown node type 'TELEPORT'" in str(error)


@pytest.mark.parametrize(
    ("node_type", "config"),
    [
        ("API_CALL", {"url": "https://example.test/x"}),
        ("LLM", {"base_url": "https://example.test/v1", "model": "m", "prompt": "hi"}),
    ],
)
def test_the_call_types_pass(node_type: str, config: Spec) -> None:
    workflow = definition(
        [start(), node("call", node_type, config), end()], chain("start", "call", "end")
    )

    validate_definition(workflow)


def test_dangling_connection_names_the_unknown_node() -> None:
    workflow = definition(
        [start(), template("greet", "hi"), end()],
        [*chain("start", "greet", "end"), connect("greet", "ghost")],
    )

    error = rejection(workflow)

    assert "`ghost`" in str(error)
    assert "greet" in str(error)


def test_unreachable_node() -> None:
    workflow = definition(
        [start(), template("greet", "hi"), template("orphan", "alone"), end()],
        chain("start", "greet", "end"),
    )

    error = rejection(workflow)

    assert_names(error, "orphan")
    assert "unreachable" in str(error)


def test_a_node_only_reached_from_an_unreachable_one_is_unreachable() -> None:
    workflow = definition(
        [start(), template("island", "a"), template("beach", "b"), end()],
        [*chain("start", "end"), connect("island", "beach")],
    )

    error = rejection(workflow)

    assert error.node_id in {"island", "beach"}
    assert "unreachable" in str(error)


def test_cycle_names_a_node_on_the_cycle() -> None:
    workflow = definition(
        [start(), template("x", "a"), template("y", "b"), end()],
        [*chain("start", "x", "y", "end"), connect("y", "x")],
    )

    error = rejection(workflow)

    assert "cycle" in str(error)
    # `end` only follows the cycle; the error must point at a node the user has to rewire.
    assert error.node_id in {"x", "y"}, str(error)
    assert f"`{error.node_id}`" in str(error)


def test_self_loop_is_a_cycle() -> None:
    workflow = definition(
        [start(), template("again", "a"), end()],
        [*chain("start", "again", "end"), connect("again", "again")],
    )

    error = rejection(workflow)

    assert_names(error, "again")
    assert "cycle" in str(error)


def test_missing_start() -> None:
    workflow = definition([template("greet", "hi"), end()], chain("greet", "end"))

    error = rejection(workflow)

    assert error.node_id is None
    assert "needs a START" in str(error)


def test_two_starts_names_the_extra_start() -> None:
    workflow = definition(
        [start(), start(node_id="start2"), end()],
        [connect("start", "end"), connect("start2", "end")],
    )

    error = rejection(workflow)

    assert "exactly one START" in str(error)
    assert error.node_id in {"start", "start2"}, str(error)
    assert f"`{error.node_id}`" in str(error)


def test_missing_end() -> None:
    workflow = definition([start(), template("greet", "hi")], chain("start", "greet"))

    error = rejection(workflow)

    assert error.node_id is None
    assert "END" in str(error)


def test_duplicate_node_id() -> None:
    workflow = definition(
        [start(), template("greet", "a"), template("greet", "b"), end()],
        chain("start", "greet", "end"),
    )

    assert_names(rejection(workflow), "greet")


@pytest.mark.parametrize("reserved", ["input", "loop", "execution", "sys"])
def test_reserved_node_id(reserved: str) -> None:
    workflow = definition(
        [start(), template(reserved, "hi"), end()], chain("start", reserved, "end")
    )

    error = rejection(workflow)

    assert_names(error, reserved)
    assert "reserved" in str(error)


def test_start_cannot_have_incoming_connections() -> None:
    workflow = definition(
        [start(), template("greet", "hi"), end()],
        [*chain("start", "greet", "end"), connect("greet", "start")],
    )

    assert_names(rejection(workflow), "start")


def test_end_cannot_have_outgoing_connections() -> None:
    workflow = definition(
        [start(), template("after", "hi"), end()],
        chain("start", "end", "after"),
    )

    assert_names(rejection(workflow), "end")


def test_on_error_naming_no_node() -> None:
    workflow = definition(
        [start(), template("risky", "x", on_error="nowhere"), end()],
        chain("start", "risky", "end"),
    )

    error = rejection(workflow)

    assert_names(error, "risky")
    assert "nowhere" in str(error)


# Conditions and connection types


def test_condition_missing_its_false_branch() -> None:
    workflow = definition(
        [*branching(), end()],
        [*BRANCHES[:2], connect("passed", "end")],
    )

    error = rejection(workflow)

    assert_names(error, "check")
    assert "CONDITIONAL_FALSE" in str(error)


def test_condition_missing_its_true_branch() -> None:
    workflow = definition(
        [*branching(), end()],
        [BRANCHES[0], BRANCHES[2], connect("failed", "end")],
    )

    error = rejection(workflow)

    assert_names(error, "check")
    assert "CONDITIONAL_TRUE" in str(error)


def test_conditional_connection_out_of_a_non_condition_node() -> None:
    workflow = definition(
        [start(), template("greet", "hi"), end()],
        [connect("start", "greet"), connect("greet", "end", "CONDITIONAL_TRUE")],
    )

    error = rejection(workflow)

    assert_names(error, "greet")
    assert "CONDITIONAL_TRUE" in str(error)


def test_sequence_connection_out_of_a_condition() -> None:
    workflow = definition(
        [*branching(), end()],
        [*BRANCHES, connect("check", "end"), connect("passed", "end"), connect("failed", "end")],
    )

    error = rejection(workflow)

    assert_names(error, "check")
    assert "SEQUENCE" in str(error)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("PARALLEL", "PARALLEL connections go out of PARALLEL nodes only"),
        ("LOOP", "LOOP connections go out of LOOP nodes only"),
    ],
)
def test_parallel_and_loop_connections_leave_their_node_types_only(kind: str, message: str) -> None:
    workflow = definition(
        [start(), template("greet", "hi"), end()],
        [connect("start", "greet", kind), connect("greet", "end")],
    )

    error = rejection(workflow)

    assert_names(error, "start")
    assert message in str(error)


# Expressions and references


@pytest.mark.parametrize("greeting", ["Hello {{ input. }}", "Hello {{ input.name", "{% if %}"])
def test_bad_template_syntax(greeting: str) -> None:
    error = rejection(greet_with(greeting))

    assert_names(error, "greet")
    assert "invalid template" in str(error)


def test_bad_condition_syntax() -> None:
    workflow = definition(
        [*branching("{{input.score}} >="), end()],
        [*BRANCHES, connect("passed", "end"), connect("failed", "end")],
    )

    error = rejection(workflow)

    assert_names(error, "check")
    assert "invalid condition" in str(error)


def test_bad_end_output_syntax() -> None:
    workflow = definition([start(), end(answer="{{ }}")], chain("start", "end"))

    assert_names(rejection(workflow), "end")


def test_reference_to_an_unknown_node() -> None:
    error = rejection(greet_with("Hello {{ghost.text}}"))

    assert_names(error, "greet")
    assert "`ghost`" in str(error)


def test_reference_to_an_undeclared_input() -> None:
    error = rejection(greet_with("Hello {{input.nickname}}"))

    assert_names(error, "greet")
    assert "`nickname`" in str(error)


def test_reference_to_a_node_that_runs_after_it() -> None:
    workflow = definition(
        [start(), template("greet", "{{later.text}}"), template("later", "x"), end()],
        chain("start", "greet", "later", "end"),
    )

    error = rejection(workflow)

    assert_names(error, "greet")
    assert "`later`" in str(error)
    assert "does not run before it" in str(error)


def test_reference_to_a_parallel_sibling() -> None:
    workflow = definition(
        [start(), template("a", "{{b.text}}"), template("b", "x"), end()],
        [connect("start", "a"), connect("start", "b"), connect("a", "end"), connect("b", "end")],
    )

    error = rejection(workflow)

    assert_names(error, "a")
    assert "`b`" in str(error)


def test_reference_to_a_node_on_only_one_branch() -> None:
    # `end` runs after either branch; `passed` only runs on the true one, so `{{passed.text}}` is
    # undefined whenever the score is below 60. The message promises "on every path".
    workflow = definition(
        [*branching(), end(verdict="{{passed.text}}")],
        [*BRANCHES, connect("passed", "end"), connect("failed", "end")],
    )

    error = rejection(workflow)

    assert_names(error, "end")
    assert "`passed`" in str(error)


def test_reference_to_a_field_a_builtin_node_does_not_output() -> None:
    error = rejection(
        definition(
            [start(), template("greet", "hi"), end(answer="{{greet.txt}}")],
            chain("start", "greet", "end"),
        )
    )

    assert_names(error, "end")
    assert "greet.txt" in str(error)


def test_loop_reference_outside_a_loop() -> None:
    error = rejection(greet_with("round {{loop.index}}"))

    assert_names(error, "greet")
    assert "loop" in str(error)


def test_reference_in_a_condition_is_checked() -> None:
    workflow = definition(
        [*branching("{{input.grade}} > 1"), end()],
        [*BRANCHES, connect("passed", "end"), connect("failed", "end")],
    )

    error = rejection(workflow)

    assert_names(error, "check")
    assert "`grade`" in str(error)


# Node configs


def test_delay_without_seconds() -> None:
    workflow = definition(
        [start(), node("wait", "DELAY", {}), end()], chain("start", "wait", "end")
    )

    error = rejection(workflow)

    assert_names(error, "wait")
    assert "config.seconds" in str(error)


def test_negative_delay() -> None:
    workflow = definition([start(), delay("wait", -1), end()], chain("start", "wait", "end"))

    assert_names(rejection(workflow), "wait")


def test_unknown_key_in_a_node_config() -> None:
    workflow = definition(
        [start(), node("wait", "DELAY", {"seconds": 1, "secs": 2}), end()],
        chain("start", "wait", "end"),
    )

    error = rejection(workflow)

    assert_names(error, "wait")
    assert "secs" in str(error)


def test_bad_input_declaration() -> None:
    workflow = definition(
        [node("start", "START", {"inputs": [{"name": "n", "type": "colour"}]}), end()],
        chain("start", "end"),
    )

    assert_names(rejection(workflow), "start")


def with_extra(path: str, value: Any) -> Spec:
    spec: Spec = {
        "name": "typo",
        "nodes": [dict(n) for n in GREET["nodes"]],
        "connections": [dict(c) for c in GREET["connections"]],
    }
    if path == "definition":
        spec["colour"] = value
    elif path == "node":
        spec["nodes"][1]["colour"] = value
    elif path == "connection":
        spec["connections"][0]["colour"] = value
    elif path == "config":
        spec["config"] = {"timeout": 10, "colour": value}
    elif path == "retry":
        spec["nodes"][1]["retry"] = {"max_attempts": 2, "colour": value}
    return spec


@pytest.mark.parametrize("where", ["definition", "node", "connection", "config", "retry"])
def test_unknown_keys_are_rejected_by_the_model(where: str) -> None:
    with pytest.raises(ValidationError, match="colour"):
        WorkflowDefinition.model_validate(with_extra(where, "red"))


def test_a_join_of_unconditional_branches_may_reference_both() -> None:
    workflow = definition(
        [start(), template("a", "A"), template("b", "B"), end(out="{{a.text}} {{b.text}}")],
        [connect("start", "a"), connect("start", "b"), connect("a", "end"), connect("b", "end")],
    )

    validate_definition(workflow)
