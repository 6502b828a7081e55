"""The Jinja2 environment every template and condition runs in: the immutable sandbox, with

- no constant folding (`optimized=False`): compiling `{{ 3**(10**7) }}` must not compute it;
- `**`, `*`, `%` and `+` intercepted, `~` compiled to a checked join, and the filters and string
  methods that pad, repeat, replace or join checked before they build anything (`guards`);
- every `{% for %}` iterable, every call and every recursive loop counted against the render's
  budget of steps, depth and CPU time (`budget`).
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from string import Formatter
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import Context, LoopContext, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment

from flowstream_shared.sandbox import guards
from flowstream_shared.sandbox.budget import counted, current

__all__ = ["LOOP_FILTER", "METHODS", "SandboxEnvironment", "environment"]

# The filter every `{% for %}` iterable is wrapped in (see `SandboxEnvironment.parse_counted`).
LOOP_FILTER = "_counted"
_PADDING = frozenset({"center", "ljust", "rjust", "zfill"})


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
# methods are Python's own, read-only ones; objects offer the read-only dict methods. Calls to
# anything else are refused when an expression compiles (`flowstream_shared.expressions`).
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


class _CodeGenerator(CodeGenerator):
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        # `a ~ b`: Jinja joins the pieces itself, out of reach of `intercepted_binops`.
        self.write("environment.checked_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class SandboxEnvironment(ImmutableSandboxedEnvironment):
    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset({"**", "*", "%", "+"})

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

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        guards.check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def checked_concat(self, parts: Iterable[Any]) -> str:
        return "".join(guards.check_concat(parts))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = current()
        budget.step()
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str | bytes | int) and not isinstance(owner, bool):
            args = _check_method(owner, getattr(__obj, "__name__", ""), args, kwargs)
        if isinstance(__obj, LoopContext) and args:
            args = (counted(args[0]), *args[1:])  # a recursive loop's next level
        elif not isinstance(__obj, Macro):
            return super().call(__context, __obj, *args, **kwargs)
        budget.enter()
        try:
            result = super().call(__context, __obj, *args, **kwargs)
        finally:
            budget.leave()
        if isinstance(result, str):
            guards.check_size("a macro's output", len(result))
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        template: str = value.__self__
        is_format_map = value.__name__ == "format_map"

        @functools.wraps(wrapped)
        def checked(*args: Any, **kwargs: Any) -> str:
            named = args[0] if is_format_map and args else kwargs
            _check_str_format(template, () if is_format_map else args, named)
            return wrapped(*args, **kwargs)

        return checked

    def parse_counted(self, source: str) -> nodes.Template:
        """Parse `source` with every loop's iterable counted against the render's budget."""
        tree = self.parse(source)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, LOOP_FILTER, [], [], None, None, lineno=loop.lineno)
        return tree


def _check_method(owner: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Methods of strings, bytes and integers that can build something large."""

    def arg(position: int, keyword: str, default: Any = None) -> Any:
        return args[position] if len(args) > position else kwargs.get(keyword, default)

    if isinstance(owner, int):
        if name == "to_bytes":
            guards.check_to_bytes(arg(0, "length", 1))
        return args
    if name in _PADDING:
        guards.check_width(f"`{name}` width", arg(0, "width"))
    elif name == "expandtabs":
        guards.check_expandtabs(owner, arg(0, "tabsize", 8))
    elif name == "replace":
        guards.check_replace(owner, arg(0, "old"), arg(1, "new"), arg(2, "count"))
    elif name == "translate":
        guards.check_translate(owner, arg(0, "table"))
    elif name == "join" and isinstance(owner, str) and args:
        return (guards.check_join(owner, args[0]), *args[1:])
    elif name == "join" and args:
        items = list(args[0])
        guards.check_size("`join`", sum(guards.size_of(i) + len(owner) for i in items))
        return (items, *args[1:])
    return args


def _check_str_format(template: str, args: tuple[Any, ...], named: Any) -> None:
    size = 0
    automatic = 0
    for _literal, field, spec, _conversion in Formatter().parse(template):
        if field is None:
            continue
        if spec:
            guards.check_format_spec(spec)
        head = field.split(".", 1)[0].split("[", 1)[0]
        value: Any = None
        if head == "":
            value = args[automatic] if automatic < len(args) else None
            automatic += 1
        elif head.isdigit():
            value = args[int(head)] if int(head) < len(args) else None
        elif isinstance(named, Mapping):
            value = named.get(head)
        size += guards.size_of(value) if isinstance(value, str) else 0
    guards.check_size("`format`", len(template) + size)


def _guarded(original: Callable[..., Any], check: Callable[[dict[str, Any]], None]) -> Any:
    """`original` with `check` run on its bound arguments first; Jinja's pass-arg markers kept."""
    signature = inspect.signature(original)
    # Jinja's sync/async filter pairs take the eval context first without declaring it.
    first = next(iter(signature.parameters), "")
    passed = getattr(original, "jinja_pass_arg", None) is not None
    skip = 1 if passed and first not in ("eval_ctx", "environment", "context") else 0

    @functools.wraps(original)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args[skip:], **kwargs)
        bound.apply_defaults()
        check(bound.arguments)
        return original(*args, **kwargs)

    return guarded


def _join_check(a: dict[str, Any]) -> None:
    if a.get("attribute") is None:
        guards.check_join(str(a["d"]), a["value"] if isinstance(a["value"], list | tuple) else [])


def _install_filters(env: SandboxEnvironment) -> None:
    filters = env.filters
    filters[LOOP_FILTER] = counted
    filters["json"] = lambda v: json.dumps(v, ensure_ascii=False)
    checks: dict[str, Callable[[dict[str, Any]], None]] = {
        "center": lambda a: guards.check_width("`center` width", a["width"]),
        "indent": lambda a: guards.check_indent(a["s"], a["width"]),
        "format": lambda a: guards.check_percent_format(str(a["value"]), a["kwargs"] or a["args"]),
        "replace": lambda a: guards.check_replace(a["s"], a["old"], a["new"], a["count"]),
        "join": _join_check,
        "batch": lambda a: guards.check_count("`batch` size", a["linecount"]),
        "slice": lambda a: guards.check_count("`slice` count", a["slices"]),
        "tojson": lambda a: guards.check_width("`tojson` indent", a["indent"]),
        "wordwrap": lambda a: guards.check_wrap(a["s"], a["width"], a["wrapstring"] or "\n"),
    }
    for name, check in checks.items():
        filters[name] = _guarded(filters[name], check)
    filters["join"] = _join_materialized(filters["join"])


def _join_materialized(guarded_join: Callable[..., Any]) -> Callable[..., Any]:
    """`join` over a generator (`map`, `select`): count the items as they come."""

    @functools.wraps(guarded_join)
    def join(eval_ctx: Any, value: Any, d: str = "", attribute: Any = None) -> Any:
        if attribute is None and not isinstance(value, list | tuple | str):
            value = guards.check_join(str(d), value)
        return guarded_join(eval_ctx, value, d, attribute)

    return join


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


def _build() -> SandboxEnvironment:
    env = SandboxEnvironment(
        undefined=StrictUndefined, autoescape=False, finalize=_finalize, optimized=False
    )
    env.globals.clear()
    _install_filters(env)
    env.tests["null"] = lambda v: v is None
    env.tests["empty"] = lambda v: v is None or (hasattr(v, "__len__") and len(v) == 0)
    env.tests["contains"] = _contains
    return env


environment = _build()
