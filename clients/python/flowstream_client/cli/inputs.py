"""`-i name=value` pairs, typed by the START node's declarations (a number stays a number)."""

from __future__ import annotations

import json
from typing import Any

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


class InputParseError(ValueError):
    pass


def declared_inputs(definition: dict[str, Any]) -> dict[str, str]:
    """Input name → declared type, from the definition's START node."""
    for node in definition.get("nodes", []):
        if node.get("type") == "START":
            declared = (node.get("config") or {}).get("inputs") or []
            return {d["name"]: d.get("type", "string") for d in declared}
    return {}


def _typed(name: str, raw: str, kind: str | None) -> Any:
    if kind in ("number", "integer"):
        try:
            number = float(raw)
        except ValueError:
            raise InputParseError(f"{name} must be a number, not {raw!r}") from None
        if kind == "integer" or number.is_integer():
            return int(number)
        return number
    if kind == "boolean":
        lowered = raw.lower()
        if lowered in _TRUE | _FALSE:
            return lowered in _TRUE
        raise InputParseError(f"{name} must be true or false, not {raw!r}")
    if kind in ("object", "array"):
        try:
            return json.loads(raw)
        except ValueError:
            raise InputParseError(f"{name} must be JSON ({kind})") from None
    return raw


def parse_inputs(pairs: list[str], definition: dict[str, Any]) -> dict[str, Any]:
    kinds = declared_inputs(definition)
    inputs: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise InputParseError(f"an input is name=value, not {pair!r}")
        inputs[name] = _typed(name, raw, kinds.get(name))
    return inputs
