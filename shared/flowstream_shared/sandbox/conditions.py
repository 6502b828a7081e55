"""Condition syntax over Jinja: `{{…}}` marks references, and `contains` is an operator.

Conditions read `a contains b` and `a not contains b`: Jinja has no such operator, so the
condition's tokens (never its text) are rewritten to the test `a is contains b`.
"""

from __future__ import annotations

import re

from jinja2 import TemplateError

from flowstream_shared.sandbox.environment import environment as _env

_REF = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


def to_expression(source: str) -> str:
    """`{{input.score}} >= 60` → `(input.score) >= 60`: the braces only mark references."""
    return _rewrite_contains(_REF.sub(lambda m: f"({m.group(1)})", source))


# A token after which an operand has ended, so a following name is in operator position.
_OPERAND_END = frozenset({"string", "integer", "float"})
_KEYWORDS = frozenset({"and", "or", "not", "in", "is", "if", "else"})


def _rewrite_contains(expression: str) -> str:
    """`a contains b` → `a is contains b`, `a not contains b` → `a is not contains b`.

    Works on Jinja's tokens, so a string or a field named `contains` is left alone. Expressions
    that do not lex are returned unchanged: compiling them reports the error.
    """
    if "contains" not in expression:
        return expression
    try:
        tokens = [(kind, value) for _, kind, value in _env.lex("{{ " + expression + " }}")]
    except TemplateError:
        return expression
    out: list[str] = []
    significant: list[tuple[str, str, int]] = []  # (kind, value, position in `out`)
    for kind, value in tokens[1:-1]:  # without the `{{` and `}}` markers
        if kind == "name" and value == "contains" and significant:
            last_kind, last_value, at = significant[-1]
            if last_kind == "name" and last_value == "not" and len(significant) > 1:
                before_kind, before_value, _ = significant[-2]
                if _ends_operand(before_kind, before_value):
                    out[at] = "is not"
                    out.append("contains")
                    significant[-1] = ("name", "is not", at)
                    continue
            if _ends_operand(last_kind, last_value):
                out.append("is contains")
                significant.append(("name", "contains", len(out) - 1))
                continue
        out.append(value)
        if kind != "whitespace":
            significant.append((kind, value, len(out) - 1))
    return "".join(out).strip()


def _ends_operand(kind: str, value: str) -> bool:
    if kind in _OPERAND_END:
        return True
    if kind == "name":
        return value not in _KEYWORDS
    return kind == "operator" and value in (")", "]", "}")
