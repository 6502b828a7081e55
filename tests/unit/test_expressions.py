"""Templates and conditions: rendering, typing, references and the sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flowstream_shared.expressions import (
    ExpressionError,
    Reference,
    compile_condition,
    compile_template,
)


def inputs(**values: Any) -> dict[str, Any]:
    return {"input": values}


# Rendering


def test_template_renders_references() -> None:
    template = compile_template("Hello {{input.name}}, you are {{ input.age }}.")

    assert template.render(inputs(name="Ada", age=36)) == "Hello Ada, you are 36."


def test_chunks_stream_the_text_in_pieces() -> None:
    template = compile_template("Hello {{input.name}}!")

    pieces = list(template.chunks(inputs(name="Ada")))

    assert pieces == ["Hello ", "Ada", "!"]
    assert "".join(pieces) == template.render(inputs(name="Ada"))


def test_node_outputs_are_referenced_by_dotted_path() -> None:
    template = compile_template("{{greet.text}} / {{fetch.body.user.name}}")
    context = {"greet": {"text": "hi"}, "fetch": {"body": {"user": {"name": "Ada"}}}}

    assert template.render(context) == "hi / Ada"


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        pytest.param(True, "true", id="true"),
        pytest.param(False, "false", id="false"),
        pytest.param({"city": "Zürich", "n": 1}, '{"city": "Zürich", "n": 1}', id="dict"),
        pytest.param([1, "two", None], '[1, "two", null]', id="list"),
        pytest.param(None, "", id="none"),
        pytest.param(2.5, "2.5", id="float"),
    ],
)
def test_values_render_as_json_not_python(value: Any, rendered: str) -> None:
    assert compile_template("v={{input.v}}").render(inputs(v=value)) == f"v={rendered}"


def test_json_filter() -> None:
    template = compile_template("{{ input.v | json }}")

    assert template.render(inputs(v='quote"d')) == '"quote\\"d"'


@pytest.mark.parametrize(
    "value",
    [
        pytest.param([1, 2, 3], id="list"),
        pytest.param(42, id="int"),
        pytest.param(True, id="bool"),
        pytest.param({"a": {"b": [1]}}, id="dict"),
        pytest.param(None, id="none"),
    ],
)
@pytest.mark.parametrize("source", ["{{input.v}}", "  {{ input.v }}\n"])
def test_a_single_reference_keeps_the_value_type(source: str, value: Any) -> None:
    result = compile_template(source).value(inputs(v=value))

    assert result == value
    assert type(result) is type(value)


def test_a_reference_inside_text_is_text() -> None:
    assert compile_template("n={{input.n}}").value(inputs(n=3)) == "n=3"
    assert compile_template("{{input.a}}{{input.b}}").value(inputs(a=1, b=2)) == "12"


def test_compiled_templates_are_cached_by_source() -> None:
    assert compile_template("cached {{input.x}}") is compile_template("cached {{input.x}}")
    assert compile_condition("{{input.x}} > 1") is compile_condition("{{input.x}} > 1")


# Conditions


@pytest.mark.parametrize(
    ("source", "values", "expected"),
    [
        ("{{input.score}} >= 60", {"score": 60}, True),
        ("{{input.score}} >= 60", {"score": 59.5}, False),
        ("{{input.score}} < 10", {"score": 3}, True),
        ("{{input.name}} == 'Ada'", {"name": "Ada"}, True),
        ("{{input.name}} != 'Ada'", {"name": "Ada"}, False),
        (
            "{{input.score}} >= 60 and {{input.verified}} == true",
            {"score": 70, "verified": True},
            True,
        ),
        (
            "{{input.score}} >= 60 and {{input.verified}} == true",
            {"score": 70, "verified": False},
            False,
        ),
        ("{{input.a}} or {{input.b}}", {"a": False, "b": True}, True),
        ("{{input.a}} or {{input.b}}", {"a": False, "b": False}, False),
        ("not {{input.a}}", {"a": False}, True),
        ("not ({{input.a}} and {{input.b}})", {"a": True, "b": True}, False),
        ("'vip' in {{input.tags}}", {"tags": ["new", "vip"]}, True),
        ("'vip' not in {{input.tags}}", {"tags": ["new"]}, True),
        ("{{input.role}} in ['admin', 'owner']", {"role": "owner"}, True),
        ("'ell' in {{input.name}}", {"name": "Hello"}, True),
        ("{{input.x}} is null", {"x": None}, True),
        ("{{input.x}} is null", {"x": 0}, False),
        ("{{input.x}} is not null", {"x": ""}, True),
        ("{{input.x}} is empty", {"x": []}, True),
        ("{{input.x}} is empty", {"x": ""}, True),
        ("{{input.x}} is empty", {"x": {}}, True),
        ("{{input.x}} is empty", {"x": None}, True),
        ("{{input.x}} is empty", {"x": [0]}, False),
        ("{{input.x}} is not empty", {"x": "a"}, True),
        ("{{input.x}} is empty", {"x": 0}, False),
    ],
)
def test_condition(source: str, values: dict[str, Any], expected: bool) -> None:
    assert compile_condition(source).evaluate({"input": values}) is expected


def test_condition_reads_node_outputs() -> None:
    condition = compile_condition("{{check.result}} == true and {{greet.text}} == 'hi'")

    assert condition.evaluate({"check": {"result": True}, "greet": {"text": "hi"}}) is True


def test_condition_comparing_incompatible_types_raises() -> None:
    condition = compile_condition("{{input.score}} > 60")

    with pytest.raises(ExpressionError, match="not supported"):
        condition.evaluate(inputs(score="high"))


# References


def test_template_references() -> None:
    template = compile_template(
        "{{input.name}} {{ greet.text }} {{fetch.body.user}} {{execution.id}}"
    )

    assert template.references == {
        Reference("input", "name"),
        Reference("greet", "text"),
        Reference("fetch", "body"),
        Reference("execution", "id"),
    }


def test_references_by_subscript_and_bare_names() -> None:
    template = compile_template("{{ input['name'] }} {{ loop }}")

    assert template.references == {Reference("input", "name"), Reference("loop", None)}


def test_condition_references() -> None:
    condition = compile_condition("{{input.score}} >= 60 and {{check.result}}")

    assert condition.references == {Reference("input", "score"), Reference("check", "result")}


def test_plain_text_has_no_references() -> None:
    assert compile_template("just text").references == frozenset()


# Errors


def test_a_missing_field_raises_when_rendered() -> None:
    template = compile_template("Hi {{input.nickname}}")

    with pytest.raises(ExpressionError, match="nickname"):
        template.render(inputs(name="Ada"))
    with pytest.raises(ExpressionError, match="nickname"):
        list(template.chunks(inputs(name="Ada")))


def test_a_missing_field_raises_for_a_single_reference() -> None:
    with pytest.raises(ExpressionError, match="nickname"):
        compile_template("{{input.nickname}}").value(inputs(name="Ada"))


def test_a_missing_node_raises() -> None:
    with pytest.raises(ExpressionError):
        compile_template("{{ghost.text}}").render(inputs())


def test_a_missing_field_raises_in_a_condition() -> None:
    with pytest.raises(ExpressionError):
        compile_condition("{{input.score}} > 60").evaluate(inputs())


@pytest.mark.parametrize("source", ["Hello {{ input. }}", "{{ input.name", "{% if %}", "{{ 1 + }}"])
def test_bad_template_syntax_raises_at_compile_time(source: str) -> None:
    with pytest.raises(ExpressionError, match="invalid template"):
        compile_template(source)


@pytest.mark.parametrize("source", ["{{input.score}} >=", "{{input.a}} and and 1", "(("])
def test_bad_condition_syntax_raises_at_compile_time(source: str) -> None:
    with pytest.raises(ExpressionError, match="invalid condition"):
        compile_condition(source)


# Sandbox

ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ().__class__.__bases__[0].__subclasses__() }}",
    "{{ input.name.__class__.__init__.__globals__ }}",
    "{{ input.__class__ }}",
    "{{ cycler.__init__.__globals__.os }}",
    "{{ lipsum.__globals__ }}",
    "{{ range(10) }}",
    "{{ input.name.format.__globals__ }}",
]


@pytest.mark.parametrize("source", ESCAPES)
def test_a_definition_cannot_escape_the_sandbox_in_a_template(source: str) -> None:
    # Calls are refused when the template compiles; attribute access when it renders.
    with pytest.raises(ExpressionError):
        compile_template(source).render(inputs(name="Ada"))
    with pytest.raises(ExpressionError):
        compile_template(source).value(inputs(name="Ada"))


@pytest.mark.parametrize(
    "source",
    ["''.__class__.__mro__ | length > 0", "{{input.name}}.__class__ == 1", "range(3) | list"],
)
def test_a_definition_cannot_escape_the_sandbox_in_a_condition(source: str) -> None:
    with pytest.raises(ExpressionError):
        compile_condition(source).evaluate(inputs(name="Ada"))


def test_attribute_access_to_unsafe_internals_names_the_sandbox() -> None:
    with pytest.raises(ExpressionError, match="sandbox"):
        compile_template("{{ ''.__class__.__mro__ }}").render(inputs())


@pytest.fixture
def hostile_values(tmp_path: Path) -> list[str]:
    marker = tmp_path / "pwned"
    return [
        f"__import__('os').system('touch {marker}')",
        "{{ 7*7 }}",
        "{% for x in range(3) %}x{% endfor %}",
        "{{ ''.__class__.__mro__ }}",
        "'); import os; os.system('true",
    ]


def test_an_input_that_looks_like_code_is_rendered_as_data(
    hostile_values: list[str], tmp_path: Path
) -> None:
    for value in hostile_values:
        context = inputs(v=value)

        assert compile_template("<{{input.v}}>").render(context) == f"<{value}>"
        assert "".join(compile_template("<{{input.v}}>").chunks(context)) == f"<{value}>"
        assert compile_template("{{input.v}}").value(context) == value
    assert not (tmp_path / "pwned").exists()


def test_an_input_that_looks_like_code_is_compared_as_data(
    hostile_values: list[str], tmp_path: Path
) -> None:
    for value in hostile_values:
        context = inputs(v=value)

        assert compile_condition("{{input.v}} == '49'").evaluate(context) is False
        assert compile_condition("{{input.v}} is not empty").evaluate(context) is True
        assert compile_condition("'import' in {{input.v}}").evaluate(context) is ("import" in value)
    assert not (tmp_path / "pwned").exists()


# Mappings: fields, never methods


@pytest.mark.parametrize("key", ["items", "keys", "values", "get", "update", "pop", "copy"])
def test_a_field_named_like_a_dict_method_is_the_field(key: str) -> None:
    context = inputs(**{key: ["a", "b"]})

    assert compile_template(f"{{{{input.{key}}}}}").value(context) == ["a", "b"]
    assert compile_template(f"{{{{input.{key}}}}}").render(context) == '["a", "b"]'
    assert compile_condition(f"'a' in {{{{input.{key}}}}}").evaluate(context) is True


def test_a_dict_method_is_not_reachable_as_a_field() -> None:
    with pytest.raises(ExpressionError):
        compile_template("{{input.items}}").render(inputs(name="Ada"))
    with pytest.raises(ExpressionError):
        compile_template("{{input.items}}").value(inputs(name="Ada"))
