"""Inputs as Dify reads them on `/v1`, and the START inputs as Dify's `user_input_form`.

Dify clients send form values as strings: `"72"` for a number, `"true"` or `"on"` for a checkbox.
Dify converts them before validating; so does `/v1`, and then applies the same strict checks as
`/api` (which converts nothing: its callers send JSON types).
"""

from __future__ import annotations

import math
from typing import Any

from flowstream_shared.inputs import InputError
from flowstream_shared.workflow import InputDeclaration

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})

# flowstream input types as Dify's form controls. Dify has no list input: `array` keeps its name.
_FORM_CONTROLS = {
    "string": "text-input",
    "text-input": "text-input",
    "paragraph": "paragraph",
    "select": "select",
    "number": "number",
    "integer": "number",
    "boolean": "checkbox",
    "object": "json_object",
}


def _number(decl: InputDeclaration, text: str) -> int | float | None:
    if not text.strip():
        return None  # Dify: a blank number is no value
    try:
        # Dify's rule: a decimal point makes a float, anything else must be an integer.
        value = float(text) if "." in text else int(text)
    except ValueError:
        raise InputError(decl.name, f"{decl.name} in input form must be a valid number") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(decl.name, f"{decl.name} in input form must be a valid number")
    return value


def _checkbox(value: Any) -> Any:
    if isinstance(value, str):
        normalized = value.strip().lower()
        if normalized in _TRUE:
            return True
        if normalized in _FALSE:
            return False
    elif isinstance(value, int | float) and not isinstance(value, bool) and value in (0, 1):
        return value == 1
    return value  # anything else is left for validation to refuse


def coerce_dify_inputs(
    declarations: list[InputDeclaration], inputs: dict[str, Any]
) -> dict[str, Any]:
    """`inputs` with Dify's string conversions applied to number and boolean inputs."""
    coerced = dict(inputs)
    for decl in declarations:
        value = inputs.get(decl.name)
        if decl.type in ("number", "integer") and isinstance(value, str):
            coerced[decl.name] = _number(decl, value)
        elif decl.type == "boolean" and value is not None:
            coerced[decl.name] = _checkbox(value)
    return coerced


def user_input_form(declarations: list[InputDeclaration]) -> list[dict[str, Any]]:
    form = []
    for decl in declarations:
        field: dict[str, Any] = {
            "label": decl.description or decl.name,
            "variable": decl.name,
            "required": decl.required,
            "default": decl.default if decl.default is not None else "",
        }
        if decl.options is not None:
            field["options"] = decl.options
        if decl.max_length is not None:
            field["max_length"] = decl.max_length
        form.append({_FORM_CONTROLS.get(decl.type, decl.type): field})
    return form
