"""Nodes, connections, LOOP bodies, reachability and cycles, PARALLEL branches, error targets."""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from collections.abc import Collection

from pydantic import BaseModel, ValidationError

from flowstream_shared.expressions import ExpressionError, compile_condition
from flowstream_shared.validation.errors import DefinitionError
from flowstream_shared.validation.rules import (
    BRANCH_EDGES,
)
from flowstream_shared.workflow import (
    RESERVED_NODE_IDS,
    ConnectionType,
    Node,
    NodeType,
    WorkflowDefinition,
    WorkflowGraph,
)


def node_config(node: Node, model: type[BaseModel]) -> BaseModel:
    try:
        return model.model_validate(node.config)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        field = f"config.{where}" if where else "config"
        raise DefinitionError(f"{field}: {first['msg']}", node.id) from exc


# Structure


def check_nodes(definition: WorkflowDefinition, node_types: Collection[str]) -> None:
    ids = {n.id for n in definition.nodes}
    seen: set[str] = set()
    for node in definition.nodes:
        if node.id in seen:
            raise DefinitionError("duplicate node id", node.id)
        if node.id in RESERVED_NODE_IDS:
            raise DefinitionError(f"`{node.id}` is reserved for references", node.id)
        seen.add(node.id)
        if node.type not in node_types:
            raise DefinitionError(f"unknown node type {node.type!r}", node.id)
        if node.on_error not in ("fail", "continue"):
            if node.on_error not in ids:
                raise DefinitionError(f"on_error {node.on_error!r} names no node", node.id)
            if node.on_error == node.id:
                raise DefinitionError("on_error cannot branch to the node itself", node.id)

    starts = [n for n in definition.nodes if n.type == NodeType.START]
    if not starts:
        raise DefinitionError("a workflow needs a START node")
    if len(starts) > 1:
        raise DefinitionError(
            "a workflow has exactly one START node; this is another", starts[1].id
        )
    if not any(n.type == NodeType.END for n in definition.nodes):
        raise DefinitionError("a workflow needs an END node")
    for node in definition.nodes:
        if node.on_error not in ("fail", "continue") and node.on_error == starts[0].id:
            raise DefinitionError("on_error cannot branch to START", node.id)


def connection_problem(
    kind: ConnectionType, source_type: str, condition: str | None = None
) -> str | None:
    """Why a connection of `kind` may not leave a node of `source_type` (None: it may)."""
    if (kind == ConnectionType.CONDITIONAL) != (condition is not None):
        return (
            "a CONDITIONAL connection needs a `condition`"
            if kind == ConnectionType.CONDITIONAL
            else f"only CONDITIONAL connections have a `condition` (this one is {kind})"
        )
    if condition is not None:
        try:
            compile_condition(condition)
        except ExpressionError as exc:
            return f"the connection's condition: {exc}"
    if kind == ConnectionType.CONDITIONAL and source_type in (
        NodeType.CONDITION,
        NodeType.PARALLEL,
    ):
        return f"a {source_type}'s outgoing connections cannot be CONDITIONAL" + (
            " (use CONDITIONAL_TRUE/FALSE)" if source_type == NodeType.CONDITION else ""
        )
    if kind in BRANCH_EDGES or source_type == NodeType.CONDITION:
        if (kind in BRANCH_EDGES) != (source_type == NodeType.CONDITION):
            return (
                f"{kind} connections go out of CONDITION nodes only"
                if kind in BRANCH_EDGES
                else f"a CONDITION's outgoing connections must be CONDITIONAL_TRUE/FALSE, "
                f"not {kind}"
            )
        return None
    if (kind == ConnectionType.PARALLEL) != (source_type == NodeType.PARALLEL):
        return (
            "PARALLEL connections go out of PARALLEL nodes only"
            if kind == ConnectionType.PARALLEL
            else f"a PARALLEL's outgoing connections are its branches and must be PARALLEL, "
            f"not {kind}"
        )
    if kind == ConnectionType.LOOP and source_type != NodeType.LOOP:
        return "LOOP connections go out of LOOP nodes only"
    return None


def check_connections(definition: WorkflowDefinition) -> None:
    types = {n.id: n.type for n in definition.nodes}
    outgoing: dict[str, list[ConnectionType]] = defaultdict(list)
    seen_edges: set[tuple[str, str]] = set()
    for index, conn in enumerate(definition.connections):
        for end in (conn.source, conn.target):
            if end not in types:
                raise DefinitionError(
                    f"connection {index} ({conn.source} → {conn.target}) names unknown node `{end}`"
                )
        if (conn.source, conn.target) in seen_edges:
            raise DefinitionError(f"duplicate connection to `{conn.target}`", conn.source)
        seen_edges.add((conn.source, conn.target))
        if types[conn.target] == NodeType.START:
            raise DefinitionError("START cannot have incoming connections", conn.target)
        if types[conn.source] == NodeType.END:
            raise DefinitionError("END cannot have outgoing connections", conn.source)
        problem = connection_problem(conn.type, types[conn.source], conn.condition)
        if problem:
            raise DefinitionError(problem, conn.source)
        outgoing[conn.source].append(conn.type)

    for node in definition.nodes:
        kinds = outgoing[node.id]
        if node.type == NodeType.CONDITION:
            missing = {ConnectionType.CONDITIONAL_TRUE, ConnectionType.CONDITIONAL_FALSE} - set(
                kinds
            )
            for key, kind in (
                ("true_path", ConnectionType.CONDITIONAL_TRUE),
                ("false_path", ConnectionType.CONDITIONAL_FALSE),
            ):
                if kind in missing and node.config.get(key) is not None:
                    raise DefinitionError(
                        f"config.{key}: no node `{node.config[key]}` (by id or name) in this "
                        "workflow",
                        node.id,
                    )
            if missing:
                names = " and ".join(sorted(m.value for m in missing))
                raise DefinitionError(f"CONDITION needs a {names} connection", node.id)
        elif node.type == NodeType.PARALLEL and not kinds:
            raise DefinitionError(
                "PARALLEL needs at least one PARALLEL connection: its branches", node.id
            )
        elif node.type == NodeType.LOOP:
            loops = kinds.count(ConnectionType.LOOP)
            if loops != 1:
                raise DefinitionError(
                    "LOOP needs exactly one LOOP connection, to the first node of its body "
                    f"(it has {loops})",
                    node.id,
                )


def check_loops(graph: WorkflowGraph) -> None:
    """A body is entered only through its LOOP connection and closed by a connection back."""
    failing_into: dict[str, list[str]] = defaultdict(list)
    for source, target in graph.error_targets.items():
        failing_into[target].append(source)
    for loop, entry in graph.loop_entries.items():
        body = graph.bodies[loop]
        if entry == loop:
            raise DefinitionError("a LOOP connection cannot lead to the LOOP node itself", loop)
        for conn in graph.connections:
            if (
                conn.target == loop
                and (conn.source, conn.target) in graph.back_edges
                and conn.type == ConnectionType.CONDITIONAL
            ):
                raise DefinitionError(
                    f"a connection back to LOOP `{loop}` cannot be CONDITIONAL: the LOOP's "
                    "own `condition` decides whether the body runs again",
                    conn.source,
                )
        if not any(target == loop for _, target in graph.back_edges):
            raise DefinitionError(
                f"the body of this LOOP (from `{entry}`) never leads back to it: connect the "
                f"body's last node back to `{loop}`",
                loop,
            )
        for node_id in sorted(body):
            if graph.types[node_id] == NodeType.END:
                raise DefinitionError(f"END cannot be inside the body of LOOP `{loop}`", node_id)
            sources: list[tuple[str, ConnectionType | None]] = [
                (c.source, c.type) for c in graph.incoming[node_id]
            ]
            sources += [(s, None) for s in failing_into[node_id]]
            for source, kind in sources:
                entering = source == loop and kind == ConnectionType.LOOP and node_id == entry
                if source not in body and not entering:
                    raise DefinitionError(
                        f"is inside the body of LOOP `{loop}` but is also reached from "
                        f"`{source}`, outside it; a body is entered only through its LOOP "
                        f"connection",
                        node_id,
                    )


def check_reachable_and_acyclic(definition: WorkflowDefinition, graph: WorkflowGraph) -> None:
    start = next(n.id for n in definition.nodes if n.type == NodeType.START)
    reached = _walk_all(graph, start)
    for node in definition.nodes:
        if node.id not in reached:
            raise DefinitionError("unreachable from START", node.id)

    # Kahn's algorithm without the back edges: whatever never reaches indegree 0 is on a cycle.
    children = _acyclic_children(graph)
    indegree = dict.fromkeys(graph.types, 0)
    for targets in children.values():
        for child in targets:
            indegree[child] += 1
    ready = deque(n for n, d in indegree.items() if d == 0)
    visited = 0
    while ready:
        current = ready.popleft()
        visited += 1
        for child in children[current]:
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    if visited != len(graph.types):
        raise DefinitionError(
            "part of a cycle (cycles are only allowed as a LOOP body, closed by a connection "
            "back to its LOOP node)",
            _a_node_on_a_cycle({n for n, d in indegree.items() if d > 0}, children),
        )


def _walk_all(graph: WorkflowGraph, start: str) -> set[str]:
    reached = {start}
    queue = deque([start])
    while queue:
        for child in graph.successors(queue.popleft()):
            if child not in reached:
                reached.add(child)
                queue.append(child)
    return reached


def _acyclic_children(graph: WorkflowGraph) -> dict[str, list[str]]:
    children: dict[str, list[str]] = defaultdict(list)
    for conn in graph.connections:
        if (conn.source, conn.target) not in graph.back_edges:
            children[conn.source].append(conn.target)
    for source, target in graph.error_targets.items():
        children[source].append(target)
    return children


def _a_node_on_a_cycle(left: set[str], children: dict[str, list[str]]) -> str:
    """Kahn leaves the cycles and everything after them; peel off what leads to no cycle
    (Kahn again, on the reversed edges), and name the first node left."""
    waiting = {n: sum(1 for c in children[n] if c in left) for n in left}
    parents: dict[str, list[str]] = defaultdict(list)
    for node_id in left:
        for child in children[node_id]:
            if child in left:
                parents[child].append(node_id)
    peel = deque(n for n, count in waiting.items() if count == 0)
    remaining = set(left)
    while peel:
        node_id = peel.popleft()
        remaining.discard(node_id)
        for parent in parents[node_id]:
            waiting[parent] -= 1
            if waiting[parent] == 0:
                peel.append(parent)
    return min(remaining)


def check_branches_and_error_targets(graph: WorkflowGraph) -> None:
    for node_id, node_type in graph.types.items():
        if node_type != NodeType.PARALLEL:
            continue
        starts = [c.target for c in graph.outgoing[node_id] if c.type == ConnectionType.PARALLEL]
        for start in starts:
            if (node_id, start) in graph.back_edges:
                raise DefinitionError(
                    f"a PARALLEL branch cannot lead straight back to LOOP `{start}`", node_id
                )
        reach = {start: graph.reach(start) for start in starts}
        # Each start is in its own reach; one reached more often is reached from another branch.
        reached_by = Counter(s for nodes in reach.values() for s in nodes if s in reach)
        for start in starts:
            if reached_by[start] < 2:
                continue
            for other in starts:
                if other != start and start in reach[other]:
                    raise DefinitionError(
                        f"PARALLEL branches must be independent: branch `{start}` is also "
                        f"reached from branch `{other}`",
                        node_id,
                    )
    for node_id, target in graph.error_targets.items():
        if graph.scope[node_id] != graph.scope[target]:
            raise DefinitionError(
                f"on_error target `{target}` must be in the same LOOP body as the node", node_id
            )


# What each node may reference
