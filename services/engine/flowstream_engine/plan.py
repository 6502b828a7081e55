"""A definition compiled for execution: adjacency, node kinds and parsed configs, built once."""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from typing import Any

from flowstream_shared.commands import WorkflowSnapshot
from flowstream_shared.workflow import ConnectionType, Node, NodeType

from flowstream_engine.nodes.base import NodeKind
from flowstream_engine.nodes.registry import node_kind


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    type: ConnectionType


@dataclass(frozen=True)
class PlannedNode:
    node: Node
    kind: NodeKind
    config: Any
    outgoing: tuple[Edge, ...]
    incoming: tuple[Edge, ...]


@dataclass(frozen=True)
class Plan:
    workflow_id: str
    version: int
    start: str
    nodes: dict[str, PlannedNode] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.nodes)


def _build(snapshot: WorkflowSnapshot) -> Plan:
    definition = snapshot.definition
    outgoing: dict[str, list[Edge]] = defaultdict(list)
    incoming: dict[str, list[Edge]] = defaultdict(list)
    for conn in definition.connections:
        edge = Edge(conn.source, conn.target, conn.type)
        outgoing[conn.source].append(edge)
        incoming[conn.target].append(edge)
    nodes: dict[str, PlannedNode] = {}
    start = ""
    for node in definition.nodes:
        kind = node_kind(node.type)
        nodes[node.id] = PlannedNode(
            node=node,
            kind=kind,
            config=kind.parse_config(node.config),
            outgoing=tuple(outgoing[node.id]),
            incoming=tuple(incoming[node.id]),
        )
        if node.type == NodeType.START:
            start = node.id
    return Plan(snapshot.workflow_id, snapshot.version, start, nodes)


_CACHE_SIZE = 1024
_cache: OrderedDict[tuple[str, int], Plan] = OrderedDict()


def plan_for(snapshot: WorkflowSnapshot) -> Plan:
    """Plans are cached per workflow version: a stored version never changes."""
    key = (snapshot.workflow_id, snapshot.version)
    plan = _cache.get(key)
    if plan is None:
        plan = _cache[key] = _build(snapshot)
        if len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    else:
        _cache.move_to_end(key)
    return plan
