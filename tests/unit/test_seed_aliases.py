"""The other spellings of a definition are read into the one canonical model, and checked."""

from __future__ import annotations

from typing import Any

import pytest
from flowstream_shared.apis import ApiDefinition, missing_parameters
from flowstream_shared.expressions import ExpressionError, compile_condition, compile_template
from flowstream_shared.validation import DefinitionError, validate_definition
from flowstream_shared.workflow import (
    ApiCallConfig,
    ConnectionType,
    NodeInput,
    WorkflowDefinition,
)
from flowstream_shared.workflow_aliases import AliasError, output_mapping_to_outputs, slug
from pydantic import ValidationError

from tests.unit.builders import GREET, chain, connect, definition, end, field, start, template


def seed_node(name: str, node_type: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "node_type": node_type,
        "config": config or {},
        "position_x": 120.5,
        "position_y": 40,
        "description": f"the {name} node",
    }


def test_seed_nodes_get_ids_from_their_names_and_keep_editor_fields() -> None:
    workflow = WorkflowDefinition.model_validate(
        {
            "name": "seed",
            "version": "1.0",
            "is_active": True,
            "nodes": [
                seed_node("Start", "start"),
                seed_node("Say hi", "TEMPLATE", {"template": "hi"}),
                seed_node("Say hi", "TEMPLATE", {"template": "again"}),
                seed_node("input", "TEMPLATE", {"template": "reserved"}),
                seed_node("9 lives", "TEMPLATE", {"template": "digit"}),
                seed_node("End", "END"),
            ],
        }
    )

    assert [n.id for n in workflow.nodes] == [
        "start",
        "say_hi",
        "say_hi_2",
        "input_node",
        "n_9_lives",
        "end",
    ]
    first = workflow.nodes[0]
    assert (first.type, first.position_x, first.position_y) == ("START", 120.5, 40.0)
    assert first.description == "the Start node"
    assert workflow.version_label == "1.0" and workflow.is_active


def test_seed_connections_and_their_types() -> None:
    workflow = definition(
        [start(), template("a", "x"), end()],
        [
            {
                "from_node_id": "start",
                "to_node_id": "a",
                "connection_type": "sequence",
                "condition": None,
                "config": {"label": "go"},
            },
            {"from_node_id": "a", "to_node_id": "end", "connection_type": "CONDITIONAL",
             "condition": "{{a.text}} == 'x'"},
        ],
    )  # fmt: skip

    first, second = workflow.connections
    assert (first.source, first.target, first.type) == ("start", "a", ConnectionType.SEQUENCE)
    assert first.config == {"label": "go"} and first.key == "start-a"
    assert second.type == ConnectionType.CONDITIONAL and second.condition == "{{a.text}} == 'x'"
    validate_definition(workflow)


def test_the_canonical_form_is_unchanged_and_stable() -> None:
    workflow = WorkflowDefinition.model_validate(GREET)
    dumped = workflow.model_dump(mode="json", by_alias=True)

    assert "version_label" not in dumped and "is_active" not in dumped
    assert all("position_x" not in n and "description" not in n for n in dumped["nodes"])
    assert all(set(c) == {"from", "to", "type"} for c in dumped["connections"])
    assert WorkflowDefinition.model_validate(dumped) == workflow


def test_a_condition_true_path_and_false_path_become_its_branches() -> None:
    workflow = WorkflowDefinition.model_validate(
        {
            "name": "branches",
            "nodes": [
                start(field("score", "number")),
                {
                    "id": "check",
                    "type": "CONDITION",
                    "config": {
                        "condition": "{{input.score}} > 5",
                        "true_path": "High",  # a name
                        "false_path": "low",  # an id
                    },
                },
                {"id": "high", "name": "High", "type": "TEMPLATE", "config": {"template": "h"}},
                template("low", "l"),
                end(),
            ],
            "connections": [*chain("start", "check"), *chain("high", "end"), *chain("low", "end")],
        }
    )

    branches = {(c.target, c.type) for c in workflow.connections if c.source == "check"}
    assert branches == {
        ("high", ConnectionType.CONDITIONAL_TRUE),
        ("low", ConnectionType.CONDITIONAL_FALSE),
    }
    assert workflow.node("check").config == {"condition": "{{input.score}} > 5"}
    validate_definition(workflow)


def test_a_branch_path_to_a_node_not_added_yet_waits_and_is_refused_if_never_added() -> None:
    workflow = definition(
        [
            start(),
            {"id": "check", "type": "CONDITION",
             "config": {"condition": "true", "true_path": "later", "false_path": "end"}},
            end(),
        ],
        chain("start", "check"),
    )  # fmt: skip

    assert workflow.node("check").config["true_path"] == "later"
    with pytest.raises(DefinitionError, match=r"config\.true_path: no node `later`"):
        validate_definition(workflow)


def test_a_conditional_out_of_a_condition_with_true_or_false_is_that_branch() -> None:
    workflow = definition(
        [start(), {"id": "c", "type": "CONDITION", "config": {"condition": "true"}},
         template("y", "y"), template("n", "n"), end()],
        [*chain("start", "c"),
         {"from": "c", "to": "y", "type": "CONDITIONAL", "condition": "true"},
         {"from": "c", "to": "n", "type": "CONDITIONAL", "condition": "False"},
         *chain("y", "end"), *chain("n", "end")],
    )  # fmt: skip

    kinds = {c.target: c.type for c in workflow.connections if c.source == "c"}
    assert kinds == {"y": ConnectionType.CONDITIONAL_TRUE, "n": ConnectionType.CONDITIONAL_FALSE}
    validate_definition(workflow)


@pytest.mark.parametrize(
    ("connection", "message"),
    [
        ({"from": "a", "to": "end", "type": "CONDITIONAL"}, "needs a `condition`"),
        ({"from": "a", "to": "end", "condition": "true"}, "only CONDITIONAL connections"),
        ({"from": "a", "to": "end", "type": "CONDITIONAL", "condition": "(("}, "condition"),
        (
            {"from": "a", "to": "end", "type": "CONDITIONAL", "condition": "{{ghost.x}} > 1"},
            "its connection to `end` references unknown node",
        ),
    ],
)
def test_conditional_connections_are_checked(connection: dict[str, Any], message: str) -> None:
    workflow = definition([start(), template("a", "x"), end()], [*chain("start", "a"), connection])

    with pytest.raises(DefinitionError, match=message) as caught:
        validate_definition(workflow)
    assert caught.value.node_id == "a"


def test_conditional_connections_out_of_a_parallel_are_refused() -> None:
    workflow = definition(
        [start(), {"id": "p", "type": "PARALLEL", "config": {}}, template("a", "x"), end()],
        [*chain("start", "p"), connect("p", "a", "PARALLEL"),
         {"from": "p", "to": "end", "type": "CONDITIONAL", "condition": "true"},
         *chain("a", "end")],
    )  # fmt: skip

    with pytest.raises(DefinitionError, match="cannot be CONDITIONAL"):
        validate_definition(workflow)


def test_a_node_after_conditional_edges_cannot_read_their_sources_alone() -> None:
    # `b` runs only when its edge's condition holds: `end` cannot count on it.
    workflow = definition(
        [start(), template("a", "x"), template("b", "y"), end(answer="{{b.text}}")],
        [*chain("start", "a"),
         {"from": "a", "to": "b", "type": "CONDITIONAL", "condition": "1 > 2"},
         *chain("a", "end"), *chain("b", "end")],
    )  # fmt: skip

    with pytest.raises(DefinitionError, match="does not run before it on every path"):
        validate_definition(workflow)


def test_output_mapping_paths_read_the_response() -> None:
    assert output_mapping_to_outputs(
        {"id": "response.data.id", "name": "data.user.name", "kept": "{{response.status_code}}",
         "first": "items[0]"}
    ) == {
        "id": "{{response.data.id}}",
        "name": "{{response.data.user.name}}",
        "kept": "{{response.status_code}}",
        "first": "{{response.items[0]}}",
    }  # fmt: skip


def test_an_api_call_with_an_output_mapping_and_body_fields_in_outputs_validates() -> None:
    workflow = definition(
        [
            start(),
            {"name": "Fetch", "node_type": "API_CALL", "config": {
                "url": "https://api.example.com/x",
                "output_mapping": {"user_id": "response.data.id"},
                "outputs": {"whole": "{{response.data}}"},
            }},
            end(user="{{fetch.user_id}}", whole="{{fetch.whole}}"),
        ],
        chain("start", "fetch", "end"),
    )  # fmt: skip

    assert workflow.node("fetch").config["outputs"] == {
        "user_id": "{{response.data.id}}",
        "whole": "{{response.data}}",
    }
    validate_definition(workflow)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "exactly one"),
        ({"url": "https://x.test", "api_id": "a"}, "exactly one"),
        ({"url": "https://x.test", "parameters": {"id": 1}}, "set `api_id`"),
    ],
)
def test_an_api_call_names_a_url_or_an_api(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ApiCallConfig.model_validate(config)


def test_an_api_call_by_api_id_checks_its_parameter_references() -> None:
    workflow = definition(
        [
            start(field("order")),
            {"id": "call", "type": "API_CALL",
             "config": {"api_id": "orders", "parameters": {"id": "{{input.ordr}}"}}},
            end(),
        ],
        chain("start", "call", "end"),
    )  # fmt: skip

    with pytest.raises(DefinitionError, match="input `ordr`"):
        validate_definition(workflow)


def test_aliases_that_disagree_are_refused() -> None:
    with pytest.raises((ValidationError, AliasError), match="disagree"):
        NodeInput.model_validate({"type": "END", "node_type": "START"})


def test_a_node_input_without_an_id_is_accepted() -> None:
    node = NodeInput.model_validate({"name": "Fetch", "node_type": "TEMPLATE"})
    assert node.id is None and node.type == "TEMPLATE"


def test_slugs() -> None:
    assert slug("  Fetch user!  ") == "fetch_user"
    assert slug("") == "node" and slug("execution") == "execution_node"


# Method calls in conditions: they work when the run evaluates them, or are refused at once.


def test_the_seed_contains_call_works_on_strings_lists_and_objects() -> None:
    condition = compile_condition("{{x}}.contains('success')")

    assert condition.evaluate({"x": "a success story"}) is True
    assert condition.evaluate({"x": ["success"]}) is True
    assert condition.evaluate({"x": {"success": 1}}) is True
    assert condition.evaluate({"x": "failure"}) is False
    assert compile_condition("{{x}}.startswith('ab') and {{x}}.endswith('yz')").evaluate(
        {"x": "ab…yz"}
    )


def test_a_method_call_reads_the_value_not_a_field_named_like_the_method() -> None:
    refs = compile_condition("{{fetch.status}}.contains('ok') or {{x}}.startswith('a')")
    assert {(r.root, r.field) for r in refs.references} == {("fetch", "status"), ("x", None)}


@pytest.mark.parametrize("source", ["{{x}}.explode()", "len({{x}}) > 1", "{{x}}.pop()"])
def test_an_unknown_call_is_refused_when_the_definition_is_written(source: str) -> None:
    with pytest.raises(ExpressionError, match="cannot be called"):
        compile_condition(source)
    workflow = definition(
        [start(field("x")), {"id": "c", "type": "CONDITION", "config": {"condition": source}},
         template("y", "y"), template("n", "n"), end()],
        [*chain("start", "c"), connect("c", "y", "CONDITIONAL_TRUE"),
         connect("c", "n", "CONDITIONAL_FALSE"), *chain("y", "end"), *chain("n", "end")],
    )  # fmt: skip
    with pytest.raises(DefinitionError, match="cannot be called"):
        validate_definition(workflow)


def test_object_methods_exist_only_when_called() -> None:
    assert compile_template("{{o.get('k')}}").value({"o": {"k": 3}}) == 3
    with pytest.raises(ExpressionError):
        compile_template("{{o.get}}").render({"o": {}})


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ({"bad name!": "1"}, "not a metric name"),
        ({"rows": "{{ghost.n}}"}, "unknown node"),
        ({"rows": "{{ x >= }}"}, "invalid template"),
    ],
)
def test_custom_metrics_are_checked(metrics: dict[str, str], message: str) -> None:
    workflow = definition(
        [start(), template("t", "x", metrics=metrics), end()], chain("start", "t", "end")
    )
    with pytest.raises(DefinitionError, match=message):
        validate_definition(workflow)


def test_a_metric_may_read_its_own_node() -> None:
    workflow = definition(
        [start(), template("t", "x", metrics={"length": "{{t.text | length}}"}), end()],
        chain("start", "t", "end"),
    )
    validate_definition(workflow)


def test_a_registry_api_names_its_placeholders_and_carries_no_secret() -> None:
    api = ApiDefinition(
        name="orders", base_url="https://a.test", method="post", path="/o/{id}/l/{line}"
    )
    assert api.method == "POST" and api.path_parameters == ["id", "line"]
    assert missing_parameters(api, {"id": 1}) == ["line"]
    for bad in (
        {"headers": {"Authorization": "Bearer sk-1"}},
        {"base_url": "https://a.test/?api_key=sk-1"},
        {"path": "/o/{{input.id}}"},
        {"base_url": "https://a.test/{id}"},
    ):
        with pytest.raises(ValidationError):
            ApiDefinition.model_validate({"name": "x", "base_url": "https://a.test", **bad})
