"""Checks run inputs against the START node's declarations, Dify style."""

from __future__ import annotations

from typing import Any

from flowstream_shared.workflow import InputDeclaration, NodeType, StartConfig, WorkflowDefinition


class InputError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


_TEXT_TYPES = frozenset({"string", "text-input", "paragraph", "select"})


def _check_type(decl: InputDeclaration, value: Any) -> None:
    kind = decl.type
    ok: bool
    if kind in _TEXT_TYPES:
        ok = isinstance(value, str)
        expected = "a string"
    elif kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        expected = "a number"
    elif kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
        expected = "an integer"
    elif kind == "boolean":
        ok = isinstance(value, bool)
        expected = "a boolean"
    elif kind == "object":
        ok = isinstance(value, dict)
        expected = "an object"
    else:
        ok = isinstance(value, list)
        expected = "an array"
    if not ok:
        raise InputError(decl.name, f"{decl.name} in input form must be {expected}")
    if kind == "select" and decl.options is not None and value not in decl.options:
        raise InputError(decl.name, f"{decl.name} in input form must be one of {decl.options}")
    if decl.max_length is not None and isinstance(value, str) and len(value) > decl.max_length:
        raise InputError(
            decl.name, f"{decl.name} in input form must be less than {decl.max_length} characters"
        )


def input_declarations(definition: WorkflowDefinition) -> list[InputDeclaration]:
    start = next(n for n in definition.nodes if n.type == NodeType.START)
    return StartConfig.model_validate(start.config).inputs


def validate_inputs(declarations: list[InputDeclaration], inputs: dict[str, Any]) -> dict[str, Any]:
    """Return the inputs the run sees: declared fields only, defaults filled in.

    An optional input that was not given is present as its default or null, so templates and
    conditions can test it (`{{input.nick}} is null`) instead of failing on a missing field.
    """
    accepted: dict[str, Any] = {}
    for decl in declarations:
        value = inputs.get(decl.name)
        if value is None or value == "":
            if decl.required and decl.default is None:
                raise InputError(decl.name, f"{decl.name} is required in input form")
            accepted[decl.name] = decl.default if decl.default is not None else value
            continue
        _check_type(decl, value)
        accepted[decl.name] = value
    return accepted
