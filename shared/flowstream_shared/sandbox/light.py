"""Which templates may render inline, on the engine's event loop, and which go to a render process.

A light template renders in time proportional to its own size and the size of the values it
reads: references, literals, comparisons, `and`/`or`/`not`, `if`, `~` and `+` (checked), and a
few filters that only look at or reshape one value. Anything that can repeat work or build
something larger than its inputs (loops, macros, calls, `set`, `*`, `**`, `%`, other filters) is
heavy. Calls to the allowed methods (`x.startswith('a')`, `o.get('k')`) are light: each is
linear in its operands, and the sandbox's guards check those that could build more. So is a
long source heavy: compiling one costs the loop time of its own.
"""

from __future__ import annotations

from collections.abc import Iterator

from jinja2 import nodes

from flowstream_shared.sandbox.environment import METHODS

__all__ = ["INLINE_MAX_NODES", "INLINE_MAX_SOURCE", "INLINE_MAX_TAGS", "is_light", "may_be_light"]

# Above these, parsing and compiling alone take milliseconds: off the loop.
INLINE_MAX_SOURCE = 16_384
INLINE_MAX_TAGS = 64
# Each operation of a light template copies at most a value's size: a bounded number of them
# bounds what one inline render may allocate (200 times a 256 KiB value at worst).
INLINE_MAX_NODES = 200
# Methods that build something larger than their operands: checked, but rendered off the loop.
_BUILDING_METHODS = frozenset(
    {"center", "expandtabs", "join", "ljust", "replace", "rjust", "translate", "zfill"}
)

_LIGHT_NODES: tuple[type[nodes.Node], ...] = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.If,
    nodes.Name,
    nodes.Getattr,
    nodes.Getitem,
    nodes.Slice,
    nodes.Const,
    nodes.List,
    nodes.Tuple,
    nodes.Dict,
    nodes.Pair,
    nodes.Keyword,
    nodes.Compare,
    nodes.Operand,
    nodes.And,
    nodes.Or,
    nodes.Not,
    nodes.Neg,
    nodes.Pos,
    nodes.CondExpr,
    nodes.Concat,
    nodes.Add,
    nodes.Sub,
    nodes.Div,
    nodes.FloorDiv,
    nodes.Test,
    nodes.Filter,
    nodes.Call,  # of an allowed method only (`_light_call`)
)

_LIGHT_FILTERS = frozenset(
    {
        "abs",
        "capitalize",
        "count",
        "d",
        "default",
        "e",
        "escape",
        "first",
        "float",
        "int",
        "json",
        "last",
        "length",
        "lower",
        "round",
        "string",
        "title",
        "tojson",
        "trim",
        "upper",
    }
)


# Filters whose arguments cannot make them costlier: a fallback value, a precision, a base.
_ARGUMENTS_HARMLESS = frozenset({"d", "default", "float", "int", "round"})


def may_be_light(source: str) -> bool:
    """A cheap look at the source alone: only short sources with few tags are parsed inline."""
    return len(source) <= INLINE_MAX_SOURCE and source.count("{") <= 2 * INLINE_MAX_TAGS


def is_light(tree: nodes.Node) -> bool:
    for count, node in enumerate(_walk(tree)):
        if count >= INLINE_MAX_NODES or type(node) not in _LIGHT_NODES:
            return False
        if isinstance(node, nodes.Filter) and not _light_filter(node):
            return False
        if isinstance(node, nodes.Call) and not _light_call(node):
            return False
    return True


def _light_call(node: nodes.Call) -> bool:
    """`x.startswith('a')`, `o.get('k')`: one method, linear in its operands (the ones that could
    build more, `replace`, `center`, `join` and the like, are checked by the sandbox's guards)."""
    callee = node.node
    return (
        isinstance(callee, nodes.Getattr)
        and callee.attr in METHODS
        and callee.attr not in _BUILDING_METHODS
        and node.dyn_args is None
        and node.dyn_kwargs is None
    )


def _light_filter(node: nodes.Filter) -> bool:
    if node.name not in _LIGHT_FILTERS or node.dyn_args or node.dyn_kwargs:
        return False
    return not (node.args or node.kwargs) or node.name in _ARGUMENTS_HARMLESS


def _walk(tree: nodes.Node) -> Iterator[nodes.Node]:
    pending = [tree]
    while pending:
        node = pending.pop()
        yield node
        pending.extend(node.iter_child_nodes())
