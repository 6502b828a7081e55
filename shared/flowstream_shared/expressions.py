"""Templates and conditions, evaluated in Jinja2's immutable sandbox.

References are `{{input.x}}`, `{{node_id.path.to.field}}`, `{{loop.index}}`, `{{execution.id}}`.
Values are bound as variables and never parsed: whatever a user sends as input stays data.
Compiled templates are cached by their source, so a definition run many times compiles once.

Conditions also read `a contains b` and `a not contains b`: Jinja has no such operator, so the
condition's tokens (never its text) are rewritten to the test `a is contains b`.

Method calls are limited to :data:`METHODS`, checked when an expression compiles (so at write
time): `x.contains(y)` works on strings, lists and objects, `x.startswith(y)` and the other
string methods on strings, `get`/`keys`/`values`/`items` on objects. Any other call, such as
`x.foo()` or `len(x)`, is refused rather than accepted and failing every run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache, partial
from typing import Any

from jinja2 import StrictUndefined, TemplateError, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = [
    "METHODS",
    "Condition",
    "ExpressionError",
    "Reference",
    "Template",
    "compile_condition",
    "compile_template",
    "render_value",
    "value_references",
]

_REF = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_SINGLE_REF = re.compile(r"^\s*\{\{(.*?)\}\}\s*$", re.DOTALL)


class ExpressionError(ValueError):
    """A template or condition that cannot compile or evaluate; the message says why."""


@dataclass(frozen=True)
class Reference:
    """`root.field…` as written in an expression: `root` is `input`, a node id, `loop`, …"""

    root: str
    field: str | None


def _finalize(value: Any) -> Any:
    # Render values as a JSON user expects, not as Python reprs.
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value


# Methods an expression may call. `contains` is ours (strings, lists, objects); the string
# methods are Python's own, read-only ones; objects offer the read-only dict methods.
_STRING_METHODS = frozenset(
    name
    for name in dir(str)
    if not name.startswith("_") and name not in {"format", "format_map", "encode", "maketrans"}
)
_MAPPING_METHODS = frozenset({"get", "keys", "values", "items"})
_LIST_METHODS = frozenset({"count", "index"})
METHODS = frozenset({"contains", *_STRING_METHODS, *_MAPPING_METHODS, *_LIST_METHODS})


class _Method(StrictUndefined):
    """A method that exists only to be called: `{{o.get('k')}}` works, while `{{o.get}}` is
    still the undefined field `get` (a missing field must fail, not render a method)."""

    __slots__ = ("_function",)
    # What the sandbox and Jinja's context look up on a callable before calling it.
    unsafe_callable = False
    alters_data = False
    jinja_pass_arg = None

    def __init__(self, function: Any, obj: Any, name: str) -> None:
        super().__init__(obj=obj, name=name)
        self._function = function

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._function(*args, **kwargs)


class _Environment(ImmutableSandboxedEnvironment):
    def getattr(self, obj: Any, attribute: str) -> Any:
        # `{{input.items}}` means the field `items`; the dict method only when there is none.
        if isinstance(obj, Mapping):
            if attribute in obj:
                return obj[attribute]
            if attribute == "contains":
                return _Method(partial(_contains, obj), obj, attribute)
            if attribute in _MAPPING_METHODS:
                return _Method(getattr(obj, attribute), obj, attribute)
            return self.undefined(obj=obj, name=attribute)
        if attribute == "contains" and (obj is None or isinstance(obj, str | list | tuple)):
            return _Method(partial(_contains, obj), obj, attribute)
        return super().getattr(obj, attribute)


_env = _Environment(undefined=StrictUndefined, autoescape=False, finalize=_finalize)
_env.globals.clear()
_env.filters["json"] = lambda v: json.dumps(v, ensure_ascii=False)
_env.tests["null"] = lambda v: v is None
_env.tests["empty"] = lambda v: v is None or (hasattr(v, "__len__") and len(v) == 0)


def _contains(container: Any, item: Any) -> bool:
    """`a contains b`: a substring of a string, an element of a list, a key of an object."""
    if container is None:
        return False
    if isinstance(container, str):
        if not isinstance(item, str):
            raise TypeError(f"'contains' not supported between a string and {type(item).__name__}")
        return item in container
    if isinstance(container, Mapping | list | tuple | set | frozenset):
        return item in container
    raise TypeError(f"'contains' not supported for {type(container).__name__}")


_env.tests["contains"] = _contains


def _method_calls(tree: nodes.Node) -> set[int]:
    """The `x.method` parts of `x.method(...)` calls; refuse a call to anything else."""
    methods: set[int] = set()
    for call in tree.find_all(nodes.Call):
        callee = call.node
        if isinstance(callee, nodes.Getattr) and callee.attr in METHODS:
            methods.add(id(callee))
            continue
        name = callee.attr if isinstance(callee, nodes.Getattr) else getattr(callee, "name", "")
        raise ExpressionError(
            f"`{name}()` cannot be called in an expression; the methods that work are "
            "contains, startswith, endswith, lower, upper, strip (and the other string "
            "methods), get, keys, values, items"
        )
    return methods


def _references(tree: nodes.Node) -> set[Reference]:
    found: set[Reference] = set()
    attr_roots: set[int] = set()
    methods = _method_calls(tree)
    for access in tree.find_all((nodes.Getattr, nodes.Getitem)):
        field: str | None = None
        if isinstance(access, nodes.Getattr) and id(access) in methods:
            continue  # `x.contains(…)` reads `x`, not a field called `contains`
        if isinstance(access, nodes.Getattr):
            inner, field = access.node, access.attr
        elif isinstance(access, nodes.Getitem):
            inner = access.node
            if isinstance(access.arg, nodes.Const) and isinstance(access.arg.value, str):
                field = access.arg.value
        else:
            continue
        if isinstance(inner, nodes.Name):
            attr_roots.add(id(inner))
            found.add(Reference(inner.name, field))
    for name in tree.find_all(nodes.Name):
        if id(name) not in attr_roots and name.ctx == "load":
            found.add(Reference(name.name, None))
    return found


def _describe(exc: Exception) -> str:
    if isinstance(exc, SecurityError):
        return f"not allowed in a sandboxed expression: {exc}"
    return str(exc)


def _only(roots: frozenset[str], context: Mapping[str, Any]) -> dict[str, Any]:
    """The variables an expression can reach. Jinja copies whatever it is given on every call,
    so handing it a run's whole context made each node's cost grow with the nodes before it."""
    return {root: context[root] for root in roots if root in context}


@dataclass(frozen=True)
class Template:
    """A text template. If it is exactly one reference, :meth:`value` keeps the value's type."""

    source: str
    references: frozenset[Reference]
    _compiled: Any
    _single: Any | None

    @cached_property
    def _roots(self) -> frozenset[str]:
        return frozenset(ref.root for ref in self.references)

    def render(self, context: Mapping[str, Any]) -> str:
        return "".join(self.chunks(context))

    def chunks(self, context: Mapping[str, Any]) -> Iterator[str]:
        """The rendered text in pieces, as the template produces them (for streaming)."""
        try:
            yield from self._compiled.generate(_only(self._roots, context))
        except (TemplateError, TypeError, ValueError, ArithmeticError) as exc:
            raise ExpressionError(_describe(exc)) from exc

    def value(self, context: Mapping[str, Any]) -> Any:
        if self._single is None:
            return self.render(context)
        try:
            result = self._single(**_only(self._roots, context))
        except (TemplateError, TypeError, ValueError, ArithmeticError) as exc:
            raise ExpressionError(_describe(exc)) from exc
        if isinstance(result, StrictUndefined):
            raise ExpressionError(f"{self.source.strip()} is undefined")
        return result


@dataclass(frozen=True)
class Condition:
    source: str
    references: frozenset[Reference]
    _compiled: Any

    @cached_property
    def _roots(self) -> frozenset[str]:
        return frozenset(ref.root for ref in self.references)

    def evaluate(self, context: Mapping[str, Any]) -> bool:
        try:
            result = self._compiled(**_only(self._roots, context))
            return bool(result)
        except (TemplateError, TypeError, ValueError, ArithmeticError) as exc:
            raise ExpressionError(_describe(exc)) from exc


@lru_cache(maxsize=4096)
def compile_template(source: str) -> Template:
    try:
        tree = _env.parse(source)
        compiled = _env.from_string(tree)
        single = None
        match = _SINGLE_REF.match(source)
        if match and "{{" not in match.group(1):
            single = _env.compile_expression(match.group(1), undefined_to_none=False)
    except TemplateError as exc:
        raise ExpressionError(f"invalid template: {exc}") from exc
    return Template(source, frozenset(_references(tree)), compiled, single)


def _to_expression(source: str) -> str:
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


@lru_cache(maxsize=4096)
def compile_condition(source: str) -> Condition:
    expression = _to_expression(source)
    try:
        tree = _env.parse("{{ " + expression + " }}")
        compiled = _env.compile_expression(expression, undefined_to_none=False)
    except TemplateError as exc:
        raise ExpressionError(f"invalid condition: {exc}") from exc
    return Condition(source, frozenset(_references(tree)), compiled)


def value_references(value: Any) -> frozenset[Reference]:
    """The references in every template string inside a JSON-like value (an API_CALL body)."""
    if isinstance(value, str):
        return compile_template(value).references
    found: set[Reference] = set()
    if isinstance(value, Mapping):
        for item in value.values():
            found |= value_references(item)
    elif isinstance(value, list):
        for item in value:
            found |= value_references(item)
    return frozenset(found)


def render_value(value: Any, context: Mapping[str, Any]) -> Any:
    """Render every template string inside a JSON-like value; other values stay as they are.

    A string that is exactly one reference keeps the value's type, so `{"user": "{{input.user}}"}`
    can carry an object.
    """
    if isinstance(value, str):
        return compile_template(value).value(context)
    if isinstance(value, Mapping):
        return {key: render_value(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [render_value(item, context) for item in value]
    return value
