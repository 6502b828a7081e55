"""Checks a workflow definition before it is stored or run.

Every problem names the node (or connection) it is about: the API answers a 400 a user can act on.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Collection

from pydantic import BaseModel, ValidationError

from flowstream_shared.expressions import (
    ExpressionError,
    Reference,
    compile_condition,
    compile_template,
)
from flowstream_shared.workflow import (
    BUILTIN_CONFIGS,
    BUILTIN_OUTPUTS,
    RESERVED_NODE_IDS,
    ConditionConfig,
    ConnectionType,
    EndConfig,
    Node,
    NodeType,
    StartConfig,
    TemplateConfig,
    WorkflowDefinition,
)

# Declared in the definition format, executed by a later engine release.
PLANNED_NODE_TYPES = frozenset({NodeType.API_CALL, NodeType.PARALLEL, NodeType.LOOP, NodeType.LLM})
RUNTIME_ROOTS = frozenset({"input", "execution", "sys"})
_BRANCH_EDGES = frozenset({ConnectionType.CONDITIONAL_TRUE, ConnectionType.CONDITIONAL_FALSE})


class DefinitionError(ValueError):
    def __init__(self, message: str, node_id: str | None = None) -> None:
        self.node_id = node_id
        super().__init__(f"node `{node_id}`: {message}" if node_id else message)


def _config(node: Node, model: type[BaseModel]) -> BaseModel:
    try:
        return model.model_validate(node.config)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise DefinitionError(f"config.{where}: {first['msg']}", node.id) from exc


def _always_before(definition: WorkflowDefinition) -> dict[str, set[str]]:
    """For each node, the nodes that have run whenever it runs (so it may reference them).

    A node runs once one incoming edge is taken. An edge may go untaken if it is a CONDITION
    branch or its source may be skipped. A parent that can never be skipped has always run; of
    parents that can, only what they all share is certain. Needs an acyclic graph.
    """
    incoming: dict[str, list[tuple[str, ConnectionType]]] = defaultdict(list)
    for conn in definition.connections:
        incoming[conn.target].append((conn.source, conn.type))
    order = _topological_order(definition)
    skippable: dict[str, bool] = {}
    before: dict[str, set[str]] = {}
    for node_id in order:
        parents = incoming[node_id]
        edge_optional = [kind in _BRANCH_EDGES or skippable[source] for source, kind in parents]
        skippable[node_id] = bool(parents) and all(edge_optional)
        certain: set[str] = set()
        shared: set[str] | None = None
        for (source, _), optional in zip(parents, edge_optional, strict=True):
            reach = before[source] | {source}
            if not optional:
                certain |= reach
            shared = reach if shared is None else shared & reach
        before[node_id] = certain | (shared or set())
    return before


def _topological_order(definition: WorkflowDefinition) -> list[str]:
    children: dict[str, list[str]] = defaultdict(list)
    indegree: dict[str, int] = {n.id: 0 for n in definition.nodes}
    for conn in definition.connections:
        children[conn.source].append(conn.target)
        indegree[conn.target] += 1
    ready = deque(n for n, d in indegree.items() if d == 0)
    order: list[str] = []
    while ready:
        current = ready.popleft()
        order.append(current)
        for child in children[current]:
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    return order


def _check_structure(definition: WorkflowDefinition, node_types: Collection[str]) -> None:
    ids: set[str] = set()
    for node in definition.nodes:
        if node.id in ids:
            raise DefinitionError("duplicate node id", node.id)
        if node.id in RESERVED_NODE_IDS:
            raise DefinitionError(f"`{node.id}` is reserved for references", node.id)
        ids.add(node.id)
        if node.type in PLANNED_NODE_TYPES:
            raise DefinitionError(
                f"node type {node.type} is not available in this release", node.id
            )
        if node.type not in node_types:
            raise DefinitionError(f"unknown node type {node.type!r}", node.id)
        if node.on_error not in ("fail", "continue"):
            if node.on_error not in {n.id for n in definition.nodes}:
                raise DefinitionError(f"on_error {node.on_error!r} names no node", node.id)
            raise DefinitionError(
                "on_error branching to a node is not available in this release; "
                "use `fail` or `continue`",
                node.id,
            )

    starts = [n for n in definition.nodes if n.type == NodeType.START]
    if not starts:
        raise DefinitionError("a workflow needs a START node")
    if len(starts) > 1:
        raise DefinitionError(
            "a workflow has exactly one START node; this is another", starts[1].id
        )
    if not any(n.type == NodeType.END for n in definition.nodes):
        raise DefinitionError("a workflow needs an END node")

    types = {n.id: n.type for n in definition.nodes}
    outgoing: dict[str, list[ConnectionType]] = defaultdict(list)
    seen_edges: set[tuple[str, str]] = set()
    for index, conn in enumerate(definition.connections):
        for end in (conn.source, conn.target):
            if end not in ids:
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
        is_branch = conn.type in (ConnectionType.CONDITIONAL_TRUE, ConnectionType.CONDITIONAL_FALSE)
        if is_branch != (types[conn.source] == NodeType.CONDITION):
            raise DefinitionError(
                f"{conn.type} connections go out of CONDITION nodes only"
                if is_branch
                else f"a CONDITION's outgoing connections must be CONDITIONAL_TRUE/FALSE, "
                f"not {conn.type}",
                conn.source,
            )
        if conn.type in (ConnectionType.PARALLEL, ConnectionType.LOOP):
            raise DefinitionError(
                f"{conn.type} connections are not available in this release", conn.source
            )
        outgoing[conn.source].append(conn.type)

    for node in definition.nodes:
        if node.type == NodeType.CONDITION:
            kinds = set(outgoing[node.id])
            missing = {ConnectionType.CONDITIONAL_TRUE, ConnectionType.CONDITIONAL_FALSE} - kinds
            if missing:
                names = " and ".join(sorted(m.value for m in missing))
                raise DefinitionError(f"CONDITION needs a {names} connection", node.id)

    _check_reachable_and_acyclic(definition, starts[0].id)


def _check_reachable_and_acyclic(definition: WorkflowDefinition, start: str) -> None:
    children: dict[str, list[str]] = defaultdict(list)
    indegree: dict[str, int] = {n.id: 0 for n in definition.nodes}
    for conn in definition.connections:
        children[conn.source].append(conn.target)
        indegree[conn.target] += 1

    reached = {start}
    queue = deque([start])
    while queue:
        for child in children[queue.popleft()]:
            if child not in reached:
                reached.add(child)
                queue.append(child)
    for node in definition.nodes:
        if node.id not in reached:
            raise DefinitionError("unreachable from START", node.id)

    # Kahn's algorithm: whatever never reaches indegree 0 sits on a cycle.
    ready = deque(n for n, d in indegree.items() if d == 0)
    visited = 0
    while ready:
        current = ready.popleft()
        visited += 1
        for child in children[current]:
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    if visited != len(definition.nodes):
        raise DefinitionError(
            "part of a cycle (cycles are only allowed inside a LOOP)",
            _a_node_on_a_cycle({n for n, d in indegree.items() if d > 0}, children),
        )


def _a_node_on_a_cycle(left: set[str], children: dict[str, list[str]]) -> str:
    """Kahn leaves the cycles and everything after them; peel off what leads to no cycle."""
    remaining = set(left)
    changed = True
    while changed:
        changed = False
        for node_id in sorted(remaining):
            if not any(child in remaining for child in children[node_id]):
                remaining.discard(node_id)
                changed = True
    return sorted(remaining)[0]


def _check_references(
    definition: WorkflowDefinition, node: Node, refs: frozenset[Reference], ancestors: set[str]
) -> None:
    nodes_by_id = {n.id: n for n in definition.nodes}
    start = next(n for n in definition.nodes if n.type == NodeType.START)
    declared_inputs = {i.name for i in StartConfig.model_validate(start.config).inputs}
    for ref in refs:
        if ref.root == "input":
            if ref.field is not None and ref.field not in declared_inputs:
                raise DefinitionError(
                    f"references input `{ref.field}`, which START does not declare", node.id
                )
            continue
        if ref.root in RUNTIME_ROOTS:
            continue
        if ref.root == "loop":
            raise DefinitionError("`loop` is only defined inside a LOOP body", node.id)
        target = nodes_by_id.get(ref.root)
        if target is None:
            raise DefinitionError(f"references unknown node or variable `{ref.root}`", node.id)
        if ref.root not in ancestors:
            raise DefinitionError(
                f"references `{ref.root}`, which does not run before it on every path", node.id
            )
        known = BUILTIN_OUTPUTS.get(target.type)
        if known is not None and ref.field is not None and ref.field not in known:
            fields = ", ".join(sorted(known))
            raise DefinitionError(
                f"references `{ref.root}.{ref.field}`; {target.type} nodes output {fields}", node.id
            )


def _expressions(node: Node, config: BaseModel) -> list[frozenset[Reference]]:
    try:
        if isinstance(config, TemplateConfig):
            return [compile_template(config.template).references]
        if isinstance(config, EndConfig):
            return [compile_template(t).references for t in config.outputs.values()]
        if isinstance(config, ConditionConfig):
            return [compile_condition(config.condition).references]
    except ExpressionError as exc:
        raise DefinitionError(str(exc), node.id) from exc
    return []


def validate_definition(
    definition: WorkflowDefinition, plugin_types: Collection[str] = ()
) -> WorkflowDefinition:
    """Raise :class:`DefinitionError` naming the first problem; return the definition if sound."""
    _check_structure(definition, {*BUILTIN_CONFIGS, *plugin_types})
    ancestors = _always_before(definition)
    for node in definition.nodes:
        model = BUILTIN_CONFIGS.get(node.type)
        if model is None:
            continue  # a plugin checks its own config
        config = _config(node, model)
        for refs in _expressions(node, config):
            _check_references(definition, node, refs, ancestors[node.id])
    return definition
