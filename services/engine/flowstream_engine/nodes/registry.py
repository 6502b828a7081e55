"""Node types by name: the built-ins plus plugins from the `flowstream.nodes` entry point group."""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from flowstream_engine.nodes.base import NodeKind
from flowstream_engine.nodes.builtin import BUILTIN_KINDS

ENTRY_POINT_GROUP = "flowstream.nodes"


class UnknownNodeType(LookupError):
    pass


@cache
def _kinds() -> dict[str, NodeKind]:
    kinds: dict[str, NodeKind] = {kind.name: kind for kind in BUILTIN_KINDS}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        plugin = entry.load()
        kind = plugin() if isinstance(plugin, type) else plugin
        kinds.setdefault(entry.name, kind)
    return kinds


def node_kind(name: str) -> NodeKind:
    try:
        return _kinds()[name]
    except KeyError:
        raise UnknownNodeType(name) from None
