"""Conditions: `contains`, `not contains` and the operators the node types rely on."""

from __future__ import annotations

from typing import Any

import pytest
from flowstream_shared.expressions import (
    ExpressionError,
    Reference,
    compile_condition,
    render_value,
    value_references,
)


@pytest.mark.parametrize(
    ("source", "values", "expected"),
    [
        ("{{input.tags}} contains 'vip'", {"tags": ["new", "vip"]}, True),
        ("{{input.tags}} contains 'vip'", {"tags": ["new"]}, False),
        ("{{input.tags}} not contains 'vip'", {"tags": ["new"]}, True),
        ("{{input.name}} contains 'ell'", {"name": "Hello"}, True),
        ("{{input.name}} contains {{input.part}}", {"name": "Hello", "part": "lo"}, True),
        ("{{input.user}} contains 'id'", {"user": {"id": 1}}, True),
        ("{{input.missing}} contains 'x'", {"missing": None}, False),
        ("not {{input.name}} contains 'x'", {"name": "abc"}, True),
        ("{{input.a}} contains 1 and {{input.b}} contains 2", {"a": [1], "b": [2, 3]}, True),
        ("{{input.a}} contains 1 or {{input.b}} contains 2", {"a": [], "b": [3]}, False),
        ("{{input.s}} == 'a contains b'", {"s": "a contains b"}, True),
        ("{{input.n}} >= 1 and {{input.n}} is not null", {"n": 2}, True),
        ("{{input.list}} is not empty", {"list": [0]}, True),
        ("({{input.n}} > 5) == false", {"n": 2}, True),
    ],
)
def test_contains_and_friends(source: str, values: dict[str, Any], expected: bool) -> None:
    assert compile_condition(source).evaluate({"input": values}) is expected


def test_a_field_named_contains_is_a_field() -> None:
    condition = compile_condition("{{contains.text}} == 'x' and {{input.contains}} == 1")

    assert condition.evaluate({"contains": {"text": "x"}, "input": {"contains": 1}}) is True
    assert Reference("contains", "text") in condition.references


def test_contains_between_a_string_and_a_number_fails() -> None:
    with pytest.raises(ExpressionError, match="contains"):
        compile_condition("{{input.s}} contains 1").evaluate({"input": {"s": "123"}})


def test_contains_on_a_number_fails() -> None:
    with pytest.raises(ExpressionError, match="contains"):
        compile_condition("{{input.n}} contains 1").evaluate({"input": {"n": 123}})


def test_a_value_that_says_contains_is_data() -> None:
    context = {"input": {"v": "x') contains ('x"}}

    assert compile_condition("{{input.v}} contains 'contains'").evaluate(context) is True


def test_render_value_keeps_types_of_single_references() -> None:
    context = {"input": {"user": {"name": "Ada"}, "n": 3}}
    body = {
        "user": "{{input.user}}",
        "count": "{{input.n}}",
        "text": "n={{input.n}}",
        "k": [1, None],
    }

    assert render_value(body, context) == {
        "user": {"name": "Ada"},
        "count": 3,
        "text": "n=3",
        "k": [1, None],
    }


def test_value_references_walks_nested_values() -> None:
    refs = value_references({"a": ["{{input.x}}", {"b": "{{node.y}}"}], "c": 1})

    assert refs == {Reference("input", "x"), Reference("node", "y")}
