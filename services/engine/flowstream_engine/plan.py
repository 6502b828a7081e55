"""A definition compiled for execution: scopes, edges, node kinds and parsed configs, built once.

The graph is split into scopes: the top level, and one per LOOP body. Within a scope the edges
form a DAG (LOOP connections and the back edges closing a body are left out); a LOOP node runs
its body's scope once per iteration. `on_error: <node id>` becomes an edge of its own, taken
only when the node fails.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from typing import Any, ClassVar

from flowstream_shared.commands import WorkflowSnapshot
from flowstream_shared.workflow import (
    BranchKey,
    ConnectionType,
    Node,
    NodeType,
    WorkflowGraph,
)
from pydantic import ValidationError

from flowstream_engine.nodes.base import NodeContext, NodeError, NodeKind, NodeResult
from flowstream_engine.nodes.registry import node_kind


class InvalidConfig:
    """Stands in for a node whose config does not parse (a definition stored under older rules,
    or a command that never passed the gateway): the node fails with the reason, the run ends
    as any failed run does, and nothing the config asked for is done."""

    interruptible: ClassVar[bool] = False

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason

    def parse_config(self, config: Any) -> Any:
        return config

    async def run(self, ctx: NodeContext) -> NodeResult:
        raise NodeError(self.reason)


def _parsed(node: Node, kind: NodeKind) -> tuple[NodeKind, Any]:
    try:
        return kind, kind.parse_config(node.config)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return InvalidConfig(
            node.type, f"config{'.' + where if where else ''}: {first['msg']}"
        ), None
    except ValueError as exc:
        return InvalidConfig(node.type, f"config: {exc}"), None


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    type: ConnectionType
    on_error: bool = False  # the edge `on_error: <target>` adds
    condition: str | None = None  # a CONDITIONAL edge's: taken only when it holds


@dataclass(frozen=True)
class PlannedNode:
    node: Node
    kind: NodeKind
    config: Any
    outgoing: tuple[Edge, ...]  # within the node's scope
    incoming: tuple[Edge, ...]
    scope: str | None = None  # the LOOP whose body holds the node
    error_target: str | None = None
    # The PARALLEL branches of the node's own scope that hold it, and the innermost branch
    # holding it at any level (a node in a LOOP body inherits its LOOP's).
    branch_keys: tuple[BranchKey, ...] = ()
    branch: BranchKey | None = None

    @property
    def composite(self) -> bool:
        """Runs other nodes (a LOOP): stops reach it as a stop, never as a cancellation."""
        return self.node.type == NodeType.LOOP


@dataclass(frozen=True)
class Scope:
    owner: str | None  # the LOOP node, None for the top level
    entry: str
    nodes: frozenset[str]


@dataclass(frozen=True)
class Plan:
    workflow_id: str
    version: int
    start: str
    nodes: dict[str, PlannedNode] = field(default_factory=dict)
    scopes: dict[str | None, Scope] = field(default_factory=dict)
    branch_nodes: dict[BranchKey, frozenset[str]] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """Nodes at the top level: what progress counts."""
        top = self.scopes.get(None)
        return len(top.nodes) if top else len(self.nodes)

    @property
    def top(self) -> Scope:
        return self.scopes[None]


def _innermost(
    node_id: str,
    graph: WorkflowGraph,
    holders: dict[str, list[BranchKey]],
    sizes: dict[BranchKey, int],
) -> BranchKey | None:
    keys = holders.get(node_id)
    if keys:
        return min(keys, key=lambda k: sizes[k])
    owner = graph.scope.get(node_id)
    return None if owner is None else _innermost(owner, graph, holders, sizes)


def _build(snapshot: WorkflowSnapshot) -> Plan:
    definition = snapshot.definition
    graph = WorkflowGraph(definition)
    outgoing: dict[str, list[Edge]] = defaultdict(list)
    incoming: dict[str, list[Edge]] = defaultdict(list)
    for conn in graph.connections:
        if graph.is_forward(conn):
            edge = Edge(conn.source, conn.target, conn.type, condition=conn.condition)
            outgoing[conn.source].append(edge)
            incoming[conn.target].append(edge)
    for source, target in graph.error_targets.items():
        edge = Edge(source, target, ConnectionType.SEQUENCE, on_error=True)
        outgoing[source].append(edge)
        incoming[target].append(edge)

    branch_nodes: dict[BranchKey, frozenset[str]] = {}
    holders: dict[str, list[BranchKey]] = defaultdict(list)
    for node in definition.nodes:
        if node.type == NodeType.PARALLEL:
            for start, members in graph.branches(node.id):
                branch_nodes[(node.id, start)] = members
                for member in members:
                    holders[member].append((node.id, start))
    sizes = {key: len(members) for key, members in branch_nodes.items()}

    nodes: dict[str, PlannedNode] = {}
    start = ""
    for node in definition.nodes:
        kind, config = _parsed(node, node_kind(node.type))
        nodes[node.id] = PlannedNode(
            node=node,
            kind=kind,
            config=config,
            outgoing=tuple(outgoing[node.id]),
            incoming=tuple(incoming[node.id]),
            scope=graph.scope.get(node.id),
            error_target=graph.error_targets.get(node.id),
            branch_keys=tuple(holders[node.id]),
            branch=_innermost(node.id, graph, holders, sizes),
        )
        if node.type == NodeType.START:
            start = node.id

    scoped: dict[str | None, set[str]] = defaultdict(set)
    for node_id, owner in graph.scope.items():
        scoped[owner].add(node_id)
    scopes: dict[str | None, Scope] = {None: Scope(None, start, frozenset(scoped[None]))}
    for loop, entry in graph.loop_entries.items():
        scopes[loop] = Scope(loop, entry, frozenset(scoped[loop]))
    return Plan(snapshot.workflow_id, snapshot.version, start, nodes, scopes, branch_nodes)


_CACHE_SIZE = 1024
_cache: OrderedDict[str, Plan] = OrderedDict()


def plan_for(snapshot: WorkflowSnapshot) -> Plan:
    """Plans are cached by what they were built from, never by names alone: a command carrying
    another definition under a known workflow id and version gets its own plan."""
    key = hashlib.sha256(snapshot.model_dump_json().encode()).hexdigest()
    plan = _cache.get(key)
    if plan is None:
        plan = _cache[key] = _build(snapshot)
        if len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    else:
        _cache.move_to_end(key)
    return plan
