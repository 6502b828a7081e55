"""Node types by name: the built-ins plus plugins from the `flowstream.nodes` entry point group.

A plugin is a distribution declaring, for example::

    [project.entry-points."flowstream.nodes"]
    SHOUT = "my_package.nodes:ShoutNode"

The entry point names the type; it loads a :class:`~flowstream_engine.nodes.base.NodeKind` (a
class is instantiated without arguments). A plugin cannot replace a built-in type, and one that
fails to load is logged and left out rather than taking the engine down.
"""

from __future__ import annotations

import importlib
import logging
from functools import cache
from importlib.metadata import entry_points

from flowstream_engine.nodes.api_call import ApiCallNode
from flowstream_engine.nodes.base import NodeKind
from flowstream_engine.nodes.builtin import BUILTIN_KINDS
from flowstream_engine.nodes.llm import LlmNode

ENTRY_POINT_GROUP = "flowstream.nodes"

log = logging.getLogger(__name__)


class UnknownNodeType(LookupError):
    pass


@cache
def _kinds() -> dict[str, NodeKind]:
    kinds: dict[str, NodeKind] = {
        kind.name: kind for kind in (*BUILTIN_KINDS, ApiCallNode(), LlmNode())
    }
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in kinds:
            log.warning("plugin %s cannot replace the built-in node type", entry.value)
            continue
        try:
            plugin = entry.load()
            kind = plugin() if isinstance(plugin, type) else plugin
        except Exception:
            log.exception("node type plugin %s (%s) failed to load", entry.name, entry.value)
            continue
        kinds[entry.name] = kind
    return kinds


def node_kind(name: str) -> NodeKind:
    """The kind of `name`. A type this process has not seen makes it look at the installed
    distributions again once, so a plugin installed after start-up is picked up without a
    restart (a plugin already loaded is not reloaded: upgrading one needs a restart)."""
    kinds = _kinds()
    if name not in kinds:
        importlib.invalidate_caches()
        reload_plugins()
        kinds = _kinds()
    try:
        return kinds[name]
    except KeyError:
        raise UnknownNodeType(name) from None


def node_types() -> frozenset[str]:
    """Every type this engine runs, plugins included."""
    return frozenset(_kinds())


def reload_plugins() -> None:
    """Look the entry points up again on next use (for a plugin installed while running)."""
    _kinds.cache_clear()
