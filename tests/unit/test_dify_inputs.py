"""`/v1` inputs: form strings converted as Dify converts them, then checked as `/api` checks."""

from __future__ import annotations

from typing import Any

import pytest
from flowstream_gateway.dify_inputs import coerce_dify_inputs, user_input_form
from flowstream_shared.inputs import InputError, validate_inputs
from flowstream_shared.workflow import InputDeclaration


def declare(name: str, type_: str = "string", **extra: Any) -> InputDeclaration:
    return InputDeclaration.model_validate({"name": name, "type": type_, **extra})


def dify(declarations: list[InputDeclaration], inputs: dict[str, Any]) -> dict[str, Any]:
    return validate_inputs(declarations, coerce_dify_inputs(declarations, inputs))


@pytest.mark.parametrize(
    ("text", "value"),
    [("72", 72), (" 72 ", 72), ("-3", -3), ("7.5", 7.5), (".5", 0.5), ("1.5e3", 1500.0)],
)
def test_numeric_strings_become_numbers(text: str, value: float) -> None:
    converted = dify([declare("n", "number")], {"n": text})["n"]
    assert converted == value and type(converted) is type(value)


@pytest.mark.parametrize("text", ["7x", "1e3", "nan", "seven", "9" * 400 + ".0"])
def test_a_string_that_is_no_number_names_the_field(text: str) -> None:
    with pytest.raises(InputError, match=r"^n in input form must be a valid number$"):
        dify([declare("n", "number")], {"n": text})


def test_an_integer_input_takes_whole_numbers_only() -> None:
    assert dify([declare("i", "integer")], {"i": "42"}) == {"i": 42}
    with pytest.raises(InputError, match="must be an integer"):
        dify([declare("i", "integer")], {"i": "4.2"})


def test_a_blank_number_is_no_value() -> None:
    assert dify([declare("n", "number")], {"n": "  "}) == {"n": None}
    with pytest.raises(InputError, match="is required"):
        dify([declare("n", "number", required=True)], {"n": " "})


@pytest.mark.parametrize(
    ("given", "value"),
    [
        *[(t, True) for t in ("true", "1", "yes", "on", "TRUE", " On ")],
        *[(f, False) for f in ("false", "0", "no", "off", "False")],
        (1, True),
        (0, False),
        (True, True),
    ],
)
def test_checkbox_strings_become_booleans(given: Any, value: bool) -> None:
    assert dify([declare("b", "boolean")], {"b": given}) == {"b": value}


@pytest.mark.parametrize("given", ["maybe", "", 2, [True]])
def test_anything_else_for_a_boolean_is_refused_or_missing(given: Any) -> None:
    declarations = [declare("b", "boolean", required=True)]
    with pytest.raises(InputError, match=r"^b (in input form must be a boolean|is required)"):
        dify(declarations, {"b": given})


def test_other_types_are_not_converted() -> None:
    declarations = [declare("s"), declare("o", "object")]
    assert coerce_dify_inputs(declarations, {"s": "72", "o": {"a": 1}}) == {
        "s": "72",
        "o": {"a": 1},
    }
    with pytest.raises(InputError, match="must be a string"):
        dify([declare("s")], {"s": 72})


def test_strict_validation_alone_refuses_form_strings() -> None:
    with pytest.raises(InputError, match="must be a number"):
        validate_inputs([declare("n", "number")], {"n": "72"})
    with pytest.raises(InputError, match="must be a boolean"):
        validate_inputs([declare("b", "boolean")], {"b": "true"})


def test_the_input_form_uses_difys_controls() -> None:
    form = user_input_form(
        [
            declare("s"),
            declare("p", "paragraph", max_length=10),
            declare("c", "select", options=["a", "b"]),
            declare("n", "number"),
            declare("i", "integer"),
            declare("b", "boolean", default=True),
            declare("o", "object"),
            declare("a", "array"),
        ]
    )
    assert [next(iter(field)) for field in form] == [
        "text-input", "paragraph", "select", "number", "number", "checkbox", "json_object",
        "array",
    ]  # fmt: skip
    assert form[5] == {
        "checkbox": {"label": "b", "variable": "b", "required": False, "default": True}
    }
    assert form[1]["paragraph"]["max_length"] == 10 and form[2]["select"]["options"] == ["a", "b"]
