"""Checks a workflow definition before it is stored or run.

Every problem names the node (or connection) it is about: the API answers a 400 a user can act on.
The order: nodes, connections, LOOP bodies, reachability and cycles, PARALLEL branches, configs,
then every template's references.
"""

from __future__ import annotations

import re
from collections import defaultdict, deque
from collections.abc import Collection, Iterable

from pydantic import BaseModel, ValidationError

from flowstream_shared.expressions import (
    ExpressionError,
    Reference,
    compile_condition,
    compile_template,
    value_references,
)
from flowstream_shared.workflow import (
    API_RESPONSE_FIELDS,
    BUILTIN_CONFIGS,
    BUILTIN_OUTPUTS,
    RESERVED_NODE_IDS,
    ApiCallConfig,
    ConditionConfig,
    ConnectionType,
    EndConfig,
    LlmConfig,
    LoopConfig,
    Node,
    NodeType,
    ParallelConfig,
    StartConfig,
    TemplateConfig,
    WorkflowDefinition,
    WorkflowGraph,
)

RUNTIME_ROOTS = frozenset({"input", "execution", "sys"})
LOOP_FIELDS = frozenset({"index"})
_BRANCH_EDGES = frozenset({ConnectionType.CONDITIONAL_TRUE, ConnectionType.CONDITIONAL_FALSE})
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_HTTP_SCHEMES = ("http", "https")

# How a template's references are checked: as any node's, an API_CALL's output mapping (which
# may read `response`), or a LOOP's condition (which may read `loop` and its body).
_PLAIN, _RESPONSE, _LOOP_CONDITION = "plain", "response", "loop condition"


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
        field = f"config.{where}" if where else "config"
        raise DefinitionError(f"{field}: {first['msg']}", node.id) from exc


# Structure


def _check_nodes(definition: WorkflowDefinition, node_types: Collection[str]) -> None:
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


def connection_problem(kind: ConnectionType, source_type: str) -> str | None:
    """Why a connection of `kind` may not leave a node of `source_type` (None: it may)."""
    if kind in _BRANCH_EDGES or source_type == NodeType.CONDITION:
        if (kind in _BRANCH_EDGES) != (source_type == NodeType.CONDITION):
            return (
                f"{kind} connections go out of CONDITION nodes only"
                if kind in _BRANCH_EDGES
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


def _check_connections(definition: WorkflowDefinition) -> None:
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
        problem = connection_problem(conn.type, types[conn.source])
        if problem:
            raise DefinitionError(problem, conn.source)
        outgoing[conn.source].append(conn.type)

    for node in definition.nodes:
        kinds = outgoing[node.id]
        if node.type == NodeType.CONDITION:
            missing = {ConnectionType.CONDITIONAL_TRUE, ConnectionType.CONDITIONAL_FALSE} - set(
                kinds
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


def _check_loops(graph: WorkflowGraph) -> None:
    """A body is entered only through its LOOP connection and closed by a connection back."""
    for loop, entry in graph.loop_entries.items():
        body = graph.bodies[loop]
        if entry == loop:
            raise DefinitionError("a LOOP connection cannot lead to the LOOP node itself", loop)
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
            sources += [(s, None) for s, t in graph.error_targets.items() if t == node_id]
            for source, kind in sources:
                entering = source == loop and kind == ConnectionType.LOOP and node_id == entry
                if source not in body and not entering:
                    raise DefinitionError(
                        f"is inside the body of LOOP `{loop}` but is also reached from "
                        f"`{source}`, outside it; a body is entered only through its LOOP "
                        f"connection",
                        node_id,
                    )


def _check_reachable_and_acyclic(definition: WorkflowDefinition, graph: WorkflowGraph) -> None:
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


def _check_branches_and_error_targets(graph: WorkflowGraph) -> None:
    for node_id, node_type in graph.types.items():
        if node_type != NodeType.PARALLEL:
            continue
        starts = [c.target for c in graph.outgoing[node_id] if c.type == ConnectionType.PARALLEL]
        for start in starts:
            if (node_id, start) in graph.back_edges:
                raise DefinitionError(
                    f"a PARALLEL branch cannot lead straight back to LOOP `{start}`", node_id
                )
        for start in starts:
            for other in starts:
                if other != start and start in graph.reach(other):
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


def _meet(reaches: list[tuple[set[str], bool]]) -> set[str]:
    """What has run whenever a node with these parents (reach, edge optional) runs."""
    certain: set[str] = set()
    shared: set[str] | None = None
    for reach, optional in reaches:
        if not optional:
            certain |= reach
        shared = set(reach) if shared is None else shared & reach
    return certain | (shared or set())


def _always_before(
    definition: WorkflowDefinition, graph: WorkflowGraph, configs: dict[str, BaseModel]
) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """For each node, the nodes that have run whenever it runs (so it may reference them); for
    each LOOP, the body nodes that run in every iteration (its condition and the nodes after it
    may reference those: they hold the latest iteration's values).

    A node runs once one incoming edge is taken. An edge may go untaken if it is a CONDITION
    branch, an `on_error` branch or a normal edge of a node that has one, or if its source may
    be skipped (nodes in a branch of a PARALLEL that does not wait for all may be). A parent
    that can never be skipped has always run; of parents that can, only what they all share is
    certain. A LOOP's continuation hangs off a virtual `<loop>#exit` vertex that runs after
    the LOOP node and every back edge, so the graph stays acyclic.
    """
    exit_of = {loop: f"{loop}#exit" for loop in graph.loop_entries}
    branching = {n.id for n in definition.nodes if n.on_error not in ("fail", "continue")}
    # vertex → [(parent vertex, edge optional by itself, the parent itself counts)]
    parents: dict[str, list[tuple[str, bool, bool]]] = defaultdict(list)
    back: dict[str, list[tuple[str, bool]]] = defaultdict(list)
    for conn in graph.connections:
        optional = conn.type in _BRANCH_EDGES or conn.source in branching
        if (conn.source, conn.target) in graph.back_edges:  # a LOOP leaves from its exit
            back[conn.target].append((exit_of.get(conn.source, conn.source), optional))
        elif conn.type == ConnectionType.LOOP:
            parents[conn.target].append((conn.source, False, False))  # the LOOP is still running
        elif conn.source in exit_of:
            parents[conn.target].append((exit_of[conn.source], optional, False))
        else:
            parents[conn.target].append((conn.source, optional, True))
    for source, target in graph.error_targets.items():
        parents[target].append((source, True, True))
    race: set[str] = set()
    for node_id, config in configs.items():
        if isinstance(config, ParallelConfig) and not config.wait_for_all:
            for _, nodes in graph.branches(node_id):
                race |= nodes

    children: dict[str, list[str]] = defaultdict(list)
    for vertex, ps in parents.items():
        for parent, _, _ in ps:
            children[parent].append(vertex)
    for loop, exit_vertex in exit_of.items():
        children[loop].append(exit_vertex)
        for source, _ in back[loop]:
            children[source].append(exit_vertex)

    skippable: dict[str, bool] = {}
    before: dict[str, set[str]] = {}
    always_body: dict[str, set[str]] = {}
    exits = {v: loop for loop, v in exit_of.items()}
    for vertex in _order([*graph.types, *exits], children):
        if vertex in exits:
            loop = exits[vertex]
            reaches = [(before[s] | {s}, opt or skippable[s]) for s, opt in back[loop]]
            always_body[loop] = _meet(reaches) & graph.bodies[loop]
            before[vertex] = before[loop] | {loop} | always_body[loop]
            skippable[vertex] = skippable[loop]
            continue
        ps = parents[vertex]
        optionals = [opt or skippable[p] for p, opt, _ in ps]
        skippable[vertex] = vertex in race or (bool(ps) and all(optionals))
        before[vertex] = _meet(
            [
                (before[p] | {p} if counts else before[p], opt)
                for (p, _, counts), opt in zip(ps, optionals, strict=True)
            ]
        )
    return {n: before[n] - set(exits) for n in graph.types}, always_body


def _order(vertices: Iterable[str], children: dict[str, list[str]]) -> list[str]:
    indegree = dict.fromkeys(vertices, 0)
    for targets in children.values():
        for child in targets:
            indegree[child] += 1
    ready = deque(v for v, d in indegree.items() if d == 0)
    order: list[str] = []
    while ready:
        current = ready.popleft()
        order.append(current)
        for child in children[current]:
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    return order


def _known_fields(node: Node, config: BaseModel | None) -> frozenset[str] | None:
    if node.type not in BUILTIN_OUTPUTS:
        return None  # a plugin: anything
    known = BUILTIN_OUTPUTS[node.type]
    if known is None:
        return None
    if isinstance(config, ApiCallConfig):
        known = known | frozenset(config.outputs)
    if node.on_error != "fail":
        known = known | {"error"}
    return known


def _check_references(
    definition: WorkflowDefinition,
    node: Node,
    refs: frozenset[Reference],
    ancestors: set[str],
    configs: dict[str, BaseModel],
    *,
    in_loop: bool,
    kind: str = _PLAIN,
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
        if ref.root == "response" and kind == _RESPONSE:
            if ref.field is not None and ref.field not in API_RESPONSE_FIELDS:
                fields = ", ".join(sorted(API_RESPONSE_FIELDS))
                raise DefinitionError(
                    f"references `response.{ref.field}`; a response has {fields}", node.id
                )
            continue
        if ref.root == "loop":
            if not (in_loop or kind == _LOOP_CONDITION):
                raise DefinitionError("`loop` is only defined inside a LOOP body", node.id)
            if ref.field is not None and ref.field not in LOOP_FIELDS:
                raise DefinitionError(f"references `loop.{ref.field}`; a loop has index", node.id)
            continue
        target = nodes_by_id.get(ref.root)
        if target is None:
            raise DefinitionError(f"references unknown node or variable `{ref.root}`", node.id)
        if ref.root not in ancestors:
            raise DefinitionError(
                f"references `{ref.root}`, which does not run before it on every path", node.id
            )
        known = _known_fields(target, configs.get(target.id))
        if known is not None and ref.field is not None and ref.field not in known:
            fields = ", ".join(sorted(known)) or "nothing"
            raise DefinitionError(
                f"references `{ref.root}.{ref.field}`; {target.type} nodes output {fields}", node.id
            )


def _expressions(node: Node, config: BaseModel) -> list[tuple[frozenset[Reference], str]]:
    try:
        if isinstance(config, TemplateConfig):
            return [(compile_template(config.template).references, _PLAIN)]
        if isinstance(config, EndConfig):
            return [(compile_template(t).references, _PLAIN) for t in config.outputs.values()]
        if isinstance(config, ConditionConfig):
            return [(compile_condition(config.condition).references, _PLAIN)]
        if isinstance(config, LoopConfig):
            if config.condition is None:
                return []
            return [(compile_condition(config.condition).references, _LOOP_CONDITION)]
        if isinstance(config, ApiCallConfig):
            plain = [config.url, *config.headers.values()]
            plain += [v for v in config.query.values() if isinstance(v, str)]
            found = [(compile_template(t).references, _PLAIN) for t in plain]
            found.append((value_references(config.body), _PLAIN))
            found += [(compile_template(t).references, _RESPONSE) for t in config.outputs.values()]
            return found
        if isinstance(config, LlmConfig):
            texts = [m.content for m in config.messages]
            texts += [t for t in (config.system, config.prompt) if t is not None]
            return [(compile_template(t).references, _PLAIN) for t in texts]
    except ExpressionError as exc:
        raise DefinitionError(str(exc), node.id) from exc
    return []


# Node-specific checks that do not depend on references


def _static_prefix(source: str) -> str:
    return source.split("{{", 1)[0].split("{%", 1)[0]


def _check_http_url(node: Node, field: str, url: str, *, templated: bool) -> None:
    prefix = _static_prefix(url).strip() if templated else url.strip()
    if ":" in prefix:
        scheme = prefix.split(":", 1)[0].lower()
        if scheme not in _HTTP_SCHEMES:
            raise DefinitionError(
                f"config.{field}: the URL scheme must be http or https, not {scheme!r}", node.id
            )
        if not prefix.lower().startswith(f"{scheme}://"):
            raise DefinitionError(f"config.{field}: not an absolute http(s) URL", node.id)
    elif prefix == url.strip():  # no reference decides the scheme at run time
        raise DefinitionError(
            f"config.{field}: not an absolute http(s) URL (it must start with http:// or https://)",
            node.id,
        )


def _check_api_call(node: Node, config: ApiCallConfig) -> None:
    _check_http_url(node, "url", config.url, templated=True)
    for name, value in config.headers.items():
        if not _HEADER_NAME.match(name):
            raise DefinitionError(f"config.headers: {name!r} is not a valid header name", node.id)
        literal = "".join(part.split("}}", 1)[-1] for part in value.split("{{"))
        if any(c in literal for c in "\r\n\0"):
            raise DefinitionError(
                f"config.headers.{name}: a header value cannot contain CR, LF or NUL", node.id
            )
    clashes = sorted(API_RESPONSE_FIELDS & set(config.outputs))
    if clashes:
        raise DefinitionError(
            f"config.outputs.{clashes[0]}: the name is taken by the raw response output", node.id
        )


def _check_llm(node: Node, config: LlmConfig) -> None:
    if "{{" in config.base_url or "{%" in config.base_url:
        # The API key goes to this URL: it must not come from a run's values.
        raise DefinitionError("config.base_url: cannot contain references", node.id)
    _check_http_url(node, "base_url", config.base_url, templated=False)


def validate_definition(
    definition: WorkflowDefinition, plugin_types: Collection[str] = ()
) -> WorkflowDefinition:
    """Raise :class:`DefinitionError` naming the first problem; return the definition if sound."""
    _check_nodes(definition, {*BUILTIN_CONFIGS, *plugin_types})
    _check_connections(definition)
    graph = WorkflowGraph(definition)
    _check_loops(graph)
    _check_reachable_and_acyclic(definition, graph)
    _check_branches_and_error_targets(graph)

    configs: dict[str, BaseModel] = {}
    for node in definition.nodes:
        model = BUILTIN_CONFIGS.get(node.type)
        if model is None:
            continue  # a plugin checks its own config
        config = configs[node.id] = _config(node, model)
        if isinstance(config, ApiCallConfig):
            _check_api_call(node, config)
        elif isinstance(config, LlmConfig):
            _check_llm(node, config)

    before, always_body = _always_before(definition, graph, configs)
    for node in definition.nodes:
        if node.id not in configs:
            continue
        config = configs[node.id]
        in_loop = graph.scope[node.id] is not None
        for refs, kind in _expressions(node, config):
            ancestors = before[node.id]
            if kind == _LOOP_CONDITION:
                ancestors = ancestors | always_body.get(node.id, set())
            _check_references(
                definition, node, refs, ancestors, configs, in_loop=in_loop, kind=kind
            )
    return definition
