"""Run inputs checked against START's declarations, with Dify's messages."""

from __future__ import annotations

from typing import Any

import pytest
from flowstream_shared.inputs import InputError, input_declarations, validate_inputs
from flowstream_shared.workflow import InputDeclaration, WorkflowDefinition

from tests.unit.builders import GREET


def declare(name: str, type_: str = "string", **extra: Any) -> InputDeclaration:
    return InputDeclaration.model_validate({"name": name, "type": type_, **extra})


def rejection(declarations: list[InputDeclaration], inputs: dict[str, Any]) -> InputError:
    with pytest.raises(InputError) as caught:
        validate_inputs(declarations, inputs)
    return caught.value


@pytest.mark.parametrize(
    "inputs",
    [pytest.param({}, id="absent"), pytest.param({"name": None}, id="null"), {"name": ""}],
)
def test_a_required_input_that_is_missing(inputs: dict[str, Any]) -> None:
    error = rejection([declare("name", required=True)], inputs)

    assert error.field == "name"
    assert str(error) == "name is required in input form"


@pytest.mark.parametrize(
    ("type_", "value"),
    [pytest.param("boolean", False), pytest.param("number", 0), pytest.param("array", [])],
)
def test_falsy_values_are_not_missing(type_: str, value: Any) -> None:
    assert validate_inputs([declare("v", type_, required=True)], {"v": value}) == {"v": value}


@pytest.mark.parametrize(
    ("type_", "value", "expected"),
    [
        ("string", 42, "a string"),
        ("string", ["a"], "a string"),
        ("text-input", 1.5, "a string"),
        ("paragraph", {"a": 1}, "a string"),
        ("select", 1, "a string"),
        ("number", "3", "a number"),
        ("number", True, "a number"),
        ("number", [1], "a number"),
        ("integer", 1.5, "an integer"),
        ("integer", "1", "an integer"),
        ("integer", False, "an integer"),
        ("boolean", "true", "a boolean"),
        ("boolean", 1, "a boolean"),
        ("boolean", 0, "a boolean"),
        ("object", [1, 2], "an object"),
        ("object", "{}", "an object"),
        ("array", {"a": 1}, "an array"),
        ("array", "abc", "an array"),
        ("array", ("a",), "an array"),
    ],
)
def test_wrong_type(type_: str, value: Any, expected: str) -> None:
    error = rejection([declare("v", type_)], {"v": value})

    assert error.field == "v"
    assert str(error) == f"v in input form must be {expected}"


@pytest.mark.parametrize(
    ("type_", "value"),
    [
        ("string", "Ada"),
        ("text-input", "Ada"),
        ("paragraph", "line\nline"),
        ("number", 3),
        ("number", 2.5),
        ("integer", 7),
        ("boolean", True),
        ("object", {"a": [1]}),
        ("array", [1, "two"]),
    ],
)
def test_right_type(type_: str, value: Any) -> None:
    assert validate_inputs([declare("v", type_)], {"v": value}) == {"v": value}


def test_defaults_are_filled_in() -> None:
    declarations = [
        declare("greeting", default="Hello"),
        declare("times", "integer", required=True, default=1),
        declare("name"),
    ]

    assert validate_inputs(declarations, {"name": "Ada"}) == {
        "greeting": "Hello",
        "times": 1,
        "name": "Ada",
    }


def test_a_given_value_wins_over_the_default() -> None:
    assert validate_inputs([declare("greeting", default="Hello")], {"greeting": "Hi"}) == {
        "greeting": "Hi"
    }


def test_an_optional_input_without_default_is_null() -> None:
    # Present as null, so `{{input.nickname}} is null` holds instead of failing on a missing field.
    assert validate_inputs([declare("nickname"), declare("name")], {"name": "Ada"}) == {
        "nickname": None,
        "name": "Ada",
    }


def test_undeclared_inputs_are_dropped() -> None:
    accepted = validate_inputs(
        [declare("name")], {"name": "Ada", "is_admin": True, "sys.user_id": "x"}
    )

    assert accepted == {"name": "Ada"}


def test_select_options_are_enforced() -> None:
    declarations = [declare("size", "select", options=["S", "M", "L"])]

    assert validate_inputs(declarations, {"size": "M"}) == {"size": "M"}
    error = rejection(declarations, {"size": "XL"})
    assert error.field == "size"
    assert "must be one of" in str(error)
    assert "'M'" in str(error)


def test_max_length_is_enforced() -> None:
    declarations = [declare("code", max_length=3)]

    assert validate_inputs(declarations, {"code": "abc"}) == {"code": "abc"}
    error = rejection(declarations, {"code": "abcd"})
    assert error.field == "code"
    assert "3 characters" in str(error)


def test_the_first_bad_field_is_named() -> None:
    declarations = [declare("a", "number"), declare("b", "number", required=True)]

    assert rejection(declarations, {"a": 1}).field == "b"
    assert rejection(declarations, {"a": "x"}).field == "a"


def test_declarations_come_from_the_start_node() -> None:
    declarations = input_declarations(WorkflowDefinition.model_validate(GREET))

    assert [(d.name, d.type, d.required) for d in declarations] == [("name", "string", True)]
