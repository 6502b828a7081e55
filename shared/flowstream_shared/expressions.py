"""Templates and conditions, evaluated in a bounded Jinja2 sandbox (`flowstream_shared.sandbox`).

References are `{{input.x}}`, `{{node_id.path.to.field}}`, `{{loop.index}}`, `{{execution.id}}`.
Values are bound as variables and never parsed: whatever a user sends as input stays data.

Compiled templates are cached by their source in a cache bounded by bytes. A template is *light*
when it renders in time proportional to its size and its values (references, comparisons, a few
filters): the engine renders those inline. Every other template renders under a budget of steps,
depth, sizes and CPU time (see `TemplateLimits`); the engine runs those in a render process.

Conditions also read `a contains b` and `a not contains b` (`sandbox.conditions`).

Method calls are limited to :data:`METHODS`, checked when an expression compiles (so at write
time): `x.contains(y)` works on strings, lists and objects, `x.startswith(y)` and the other
string methods on strings, `get`/`keys`/`values`/`items` on objects. Any other call, such as
`x.foo()` or `len(x)`, is refused rather than accepted and failing every run.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from jinja2 import StrictUndefined, TemplateError, meta, nodes
from jinja2.exceptions import SecurityError

from flowstream_shared.sandbox import light as _light
from flowstream_shared.sandbox.budget import active as active_budget
from flowstream_shared.sandbox.budget import budget_scope
from flowstream_shared.sandbox.cache import CostBoundedCache
from flowstream_shared.sandbox.conditions import to_expression
from flowstream_shared.sandbox.environment import METHODS
from flowstream_shared.sandbox.environment import environment as _env
from flowstream_shared.sandbox.errors import BudgetExceeded, ExpressionError
from flowstream_shared.sandbox.limits import default_limits

__all__ = [
    "METHODS",
    "Condition",
    "ExpressionError",
    "Reference",
    "Template",
    "check_condition",
    "check_template",
    "compile_condition",
    "compile_template",
    "render_value",
    "value_is_light",
    "value_references",
]

_SINGLE_REF = re.compile(r"^\s*\{\{(.*?)\}\}\s*$", re.DOTALL)
# Names inside `{{ }}` / `{% %}`: what a template too large to parse inline may reference.
_TAG = re.compile(r"\{[{%](.*?)[}%]\}", re.DOTALL)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# What the compiled-template caches may hold, counted as below (`_cost`).
CACHE_BYTES = 64 << 20
# Compiled code costs about eight times its source (measured: docs/adr/0027).
_COMPILED_FACTOR = 10

# Errors a render turns into an ExpressionError naming the cause.
_RENDER_ERRORS = (
    TemplateError,
    TypeError,
    ValueError,
    ArithmeticError,
    LookupError,
    RecursionError,
    MemoryError,
)


@dataclass(frozen=True)
class Reference:
    """`root.field…` as written in an expression: `root` is `input`, a node id, `loop`, …"""

    root: str
    field: str | None


def _references(tree: nodes.Template, light: bool = True) -> frozenset[Reference]:
    """What a template reads from its run: names it does not bind itself (a `{% for %}` target,
    a `{% set %}`, a macro's arguments are its own), with the field read from each."""
    found = _accesses(tree)
    if light:
        return found  # nothing in a light template binds a name
    try:
        outside = meta.find_undeclared_variables(tree)
    except TemplateError as exc:
        raise ExpressionError(f"invalid template: {exc}") from exc
    return frozenset(ref for ref in found if ref.root in outside)


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


def _accesses(tree: nodes.Node) -> frozenset[Reference]:
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
    return frozenset(found)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SecurityError):
        return f"not allowed in a sandboxed expression: {exc}"
    if isinstance(exc, RecursionError):
        limit = default_limits().max_depth
        return f"template recursion too deep (the limit is {limit} levels)"
    if isinstance(exc, MemoryError):
        return "template exceeded its memory budget"
    return str(exc)


def _failure(exc: BaseException) -> ExpressionError:
    if isinstance(exc, ExpressionError):
        return exc
    return ExpressionError(_describe(exc))


def _only(roots: frozenset[str], context: Mapping[str, Any]) -> dict[str, Any]:
    """The variables an expression can reach. Jinja copies whatever it is given on every call,
    so handing it a run's whole context made each node's cost grow with the nodes before it."""
    return {root: context[root] for root in roots if root in context}


@contextlib.contextmanager
def _budget(light: bool) -> Iterator[None]:
    """Heavy renders run under a timed budget (unless one is already running): light ones
    cannot loop or call, so the process defaults suffice for their guarded operations."""
    if light or active_budget() is not None:
        yield
        return
    with budget_scope(default_limits()):
        yield


def _output_limit_error(limit: int) -> BudgetExceeded:
    return BudgetExceeded(f"template output exceeds {limit:,} characters (the output limit)")


class Template:
    """A text template. If it is exactly one reference, :meth:`value` keeps the value's type.

    Parsed when created if its source is short (then `light` says whether it may render
    inline); a long source is parsed only when its references are asked for or it renders.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self._tree: nodes.Template | None = None
        if _light.may_be_light(source):
            self._tree = _parse(source)
            self.light = _light.is_light(self._tree)
            self.roots = frozenset(ref.root for ref in self.references)
        else:
            self.light = False
            self.roots = frozenset(
                name for tag in _TAG.findall(source) for name in _NAME.findall(tag)
            )

    @cached_property
    def references(self) -> frozenset[Reference]:
        tree = self._tree if self._tree is not None else _parse(self.source)
        return _references(tree, self.light)

    @cached_property
    def _compiled(self) -> Any:
        tree = self._tree if self._tree is not None else _parse(self.source)
        self._tree = None  # the code is all a render needs from now on
        try:
            return _env.from_string(tree)
        except TemplateError as exc:
            raise ExpressionError(f"invalid template: {exc}") from exc

    @cached_property
    def _single(self) -> Any | None:
        match = _SINGLE_REF.match(self.source)
        if not match or "{{" in match.group(1):
            return None
        try:
            return _env.compile_expression(match.group(1), undefined_to_none=False)
        except TemplateError as exc:
            raise ExpressionError(f"invalid template: {exc}") from exc

    def _single_value(self, context: Mapping[str, Any]) -> Any:
        single: Any = self._single
        try:
            return single(**_only(self.roots, context))
        except _RENDER_ERRORS as exc:
            raise _failure(exc) from exc

    def check(self) -> None:
        """Find what only compiling finds (an unknown filter or test), keeping nothing. A light
        template uses only known filters, so checking its tests is enough; others compile."""
        tree = self._tree if self._tree is not None else _parse(self.source)
        _ = self.references
        if self.light:
            for test in tree.find_all(nodes.Test):
                if test.name not in _env.tests:
                    raise ExpressionError(f"invalid template: no test named {test.name!r}")
            return
        try:
            _env.compile(tree)
        except TemplateError as exc:
            raise ExpressionError(f"invalid template: {exc}") from exc

    def render(self, context: Mapping[str, Any]) -> str:
        if not self.light:
            return "".join(self._budgeted(context))
        # The fast path: Jinja renders in one call, and the length is checked once at the end
        # (a light template's output is at most a few hundred of its values).
        try:
            text: str = self._compiled.render(_only(self.roots, context))
        except _RENDER_ERRORS as exc:
            raise _failure(exc) from exc
        limit = default_limits().max_output
        if len(text) > limit:
            raise _output_limit_error(limit)
        return text

    def chunks(self, context: Mapping[str, Any]) -> Iterator[str]:
        """The rendered text in pieces, as the template produces them (for streaming)."""
        if self.light:
            return self._pieces(context)  # the fast path: no budget to set up
        return self._budgeted(context)

    def _budgeted(self, context: Mapping[str, Any]) -> Iterator[str]:
        with _budget(False):
            yield from self._pieces(context)

    def _pieces(self, context: Mapping[str, Any]) -> Iterator[str]:
        limit = default_limits().max_output
        produced = 0
        try:
            for piece in self._compiled.generate(_only(self.roots, context)):
                produced += len(piece)
                if produced > limit:
                    raise _output_limit_error(limit)
                yield piece
        except _RENDER_ERRORS as exc:
            raise _failure(exc) from exc

    def value(self, context: Mapping[str, Any]) -> Any:
        if self._single is None:
            return self.render(context)
        if self.light:
            result = self._single_value(context)
        else:
            with _budget(False):
                result = self._single_value(context)
        if isinstance(result, StrictUndefined):
            raise ExpressionError(f"{self.source.strip()} is undefined")
        return result


class Condition:
    """A boolean expression; parsed when created if short, like :class:`Template`."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.expression = to_expression(source)
        self._tree: nodes.Template | None = None
        if _light.may_be_light(self.expression):
            self._tree = self._parse()
            self.light = _light.is_light(self._tree)
            self.roots = frozenset(ref.root for ref in self.references)
        else:
            self.light = False
            self.roots = frozenset(_NAME.findall(self.expression))

    def _parse(self) -> nodes.Template:
        return _parse("{{ " + self.expression + " }}", kind="condition")

    @cached_property
    def references(self) -> frozenset[Reference]:
        return _references(self._tree if self._tree is not None else self._parse(), self.light)

    @cached_property
    def _compiled(self) -> Any:
        self._tree = None
        try:
            return _env.compile_expression(self.expression, undefined_to_none=False)
        except TemplateError as exc:
            raise ExpressionError(f"invalid condition: {exc}") from exc

    def check(self) -> None:
        _ = self.references
        try:
            _env.compile_expression(self.expression, undefined_to_none=False)
        except TemplateError as exc:
            raise ExpressionError(f"invalid condition: {exc}") from exc

    def evaluate(self, context: Mapping[str, Any]) -> bool:
        if self.light:
            return self._evaluate(context)
        with _budget(False):
            return self._evaluate(context)

    def _evaluate(self, context: Mapping[str, Any]) -> bool:
        try:
            return bool(self._compiled(**_only(self.roots, context)))
        except _RENDER_ERRORS as exc:
            raise _failure(exc) from exc


def _parse(source: str, kind: str = "template") -> nodes.Template:
    try:
        return _env.parse_counted(source)
    except TemplateError as exc:
        raise ExpressionError(f"invalid {kind}: {exc}") from exc
    except RecursionError as exc:
        raise ExpressionError(f"invalid {kind}: nested too deeply") from exc


def _cost(source: str, compiled: Template | Condition) -> int:
    # Light templates keep their compiled code here; heavy ones compile in a render process.
    return len(source) * (_COMPILED_FACTOR if compiled.light else 2) + 512


_templates: CostBoundedCache[str, Template] = CostBoundedCache(CACHE_BYTES, _cost)
_conditions: CostBoundedCache[str, Condition] = CostBoundedCache(CACHE_BYTES // 4, _cost)


def compile_template(source: str) -> Template:
    template = _templates.get(source)
    if template is None:
        template = Template(source)
        _templates.put(source, template)
    return template


def compile_condition(source: str) -> Condition:
    condition = _conditions.get(source)
    if condition is None:
        condition = Condition(source)
        _conditions.put(source, condition)
    return condition


def _references_cost(source: str, references: frozenset[Reference]) -> int:
    return len(source) + 128 * len(references) + 256


# Sources known to compile, with their references: validating a definition again (each step of
# building one) does not parse its templates again.
_checked: CostBoundedCache[tuple[str, str], frozenset[Reference]] = CostBoundedCache(
    CACHE_BYTES // 4, lambda key, refs: _references_cost(key[1], refs)
)


def check_template(source: str) -> frozenset[Reference]:
    """For validation: the template's references, once it is known to compile. Nothing
    compiled is kept: a gateway checks many templates it never renders."""
    references = _checked.get(("template", source))
    if references is None:
        template = Template(source)
        template.check()
        references = template.references
        _checked.put(("template", source), references)
    return references


def check_condition(source: str) -> frozenset[Reference]:
    references = _checked.get(("condition", source))
    if references is None:
        condition = Condition(source)
        condition.check()
        references = condition.references
        _checked.put(("condition", source), references)
    return references


def value_references(value: Any) -> frozenset[Reference]:
    """The references in every template string inside a JSON-like value (an API_CALL body)."""
    if isinstance(value, str):
        return check_template(value)
    found: set[Reference] = set()
    if isinstance(value, Mapping):
        for item in value.values():
            found |= value_references(item)
    elif isinstance(value, list):
        for item in value:
            found |= value_references(item)
    return frozenset(found)


def value_is_light(value: Any) -> bool:
    """Whether every template string inside a JSON-like value is light."""
    if isinstance(value, str):
        return compile_template(value).light
    if isinstance(value, Mapping):
        return all(value_is_light(item) for item in value.values())
    if isinstance(value, list):
        return all(value_is_light(item) for item in value)
    return True


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
