"""What each template and condition may reference: only what has always run before it."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable

from pydantic import BaseModel

from flowstream_shared.expressions import (
    ExpressionError,
    Reference,
    check_condition,
    check_template,
    value_references,
)
from flowstream_shared.validation.errors import DefinitionError
from flowstream_shared.validation.rules import (
    LOOP_CONDITION,
    LOOP_FIELDS,
    METRICS,
    OPTIONAL_EDGES,
    PLAIN,
    RESPONSE,
    RUNTIME_ROOTS,
)
from flowstream_shared.workflow import (
    BUILTIN_OUTPUTS,
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


def _meet(reaches: list[tuple[int, bool]]) -> int:
    """What has run whenever a node with these parents (reach, edge optional) runs.

    Sets of nodes are bit masks (one bit per node): a chain of N nodes holds N sets of up to N
    members, which as Python sets cost gigabytes at a few thousand nodes.
    """
    certain = 0
    shared: int | None = None
    for reach, optional in reaches:
        if not optional:
            certain |= reach
        shared = reach if shared is None else shared & reach
    return certain | (shared or 0)


class Precedence:
    """Which nodes have always run before a node, as :func:`always_before` found them."""

    def __init__(
        self, position: dict[str, int], before: dict[str, int], body: dict[str, int]
    ) -> None:
        self._position = position
        self._before = before
        self._always_body = body

    def ran_before(self, node_id: str, other: str, loop_condition: bool = False) -> bool:
        mask = self._before[node_id]
        if loop_condition:
            mask |= self._always_body.get(node_id, 0)
        return bool(mask >> self._position[other] & 1)


def always_before(
    definition: WorkflowDefinition, graph: WorkflowGraph, configs: dict[str, BaseModel]
) -> Precedence:
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
        optional = conn.type in OPTIONAL_EDGES or conn.source in branching
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

    bit = {node_id: 1 << i for i, node_id in enumerate(graph.types)}
    index = {node_id: i for i, node_id in enumerate(graph.types)}

    def mask(node_ids: Iterable[str]) -> int:
        result = 0
        for node_id in node_ids:
            result |= bit[node_id]
        return result

    skippable: dict[str, bool] = {}
    before: dict[str, int] = {}
    always_body: dict[str, int] = {}
    exits = {v: loop for loop, v in exit_of.items()}
    for vertex in _order([*graph.types, *exits], children):
        if vertex in exits:
            loop = exits[vertex]
            reaches = [(before[s] | bit.get(s, 0), opt or skippable[s]) for s, opt in back[loop]]
            always_body[loop] = _meet(reaches) & mask(graph.bodies[loop])
            before[vertex] = before[loop] | bit[loop] | always_body[loop]
            skippable[vertex] = skippable[loop]
            continue
        ps = parents[vertex]
        optionals = [opt or skippable[p] for p, opt, _ in ps]
        skippable[vertex] = vertex in race or (bool(ps) and all(optionals))
        before[vertex] = _meet(
            [
                (before[p] | bit.get(p, 0) if counts else before[p], opt)
                for (p, _, counts), opt in zip(ps, optionals, strict=True)
            ]
        )
    return Precedence(index, {n: before[n] for n in graph.types}, always_body)


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


class ReferenceRules:
    """What each node's templates may reference; built once per definition."""

    def __init__(
        self,
        definition: WorkflowDefinition,
        configs: dict[str, BaseModel],
        precedence: Precedence,
    ) -> None:
        self._nodes = {n.id: n for n in definition.nodes}
        start = next(n for n in definition.nodes if n.type == NodeType.START)
        self._inputs = {i.name for i in StartConfig.model_validate(start.config).inputs}
        self._configs = configs
        self._precedence = precedence

    def check(
        self,
        node: Node,
        refs: frozenset[Reference],
        *,
        in_loop: bool,
        kind: str = PLAIN,
        after_itself: bool = False,
    ) -> None:
        """`after_itself`: evaluated once `node` has run (a connection's condition), so it may
        read `node` as well."""
        for ref in refs:
            if after_itself and ref.root == node.id:
                self._check_fields(node, ref)
                continue
            self._check_one(node, ref, in_loop=in_loop, kind=kind)

    def _check_one(self, node: Node, ref: Reference, *, in_loop: bool, kind: str) -> None:
        if ref.root == "input":
            if ref.field is not None and ref.field not in self._inputs:
                raise DefinitionError(
                    f"references input `{ref.field}`, which START does not declare", node.id
                )
            return
        if ref.root in RUNTIME_ROOTS:
            return
        if ref.root == "response" and kind == RESPONSE:
            # `status_code`, `headers`, `body`, or a field of a JSON object body
            # (`response.data` reads `response.body.data`): the body is known only at run time.
            return
        if ref.root == node.id and kind == METRICS:
            return  # a metric reads the node's own outputs
        if ref.root == "loop":
            if not (in_loop or kind == LOOP_CONDITION):
                raise DefinitionError("`loop` is only defined inside a LOOP body", node.id)
            if ref.field is not None and ref.field not in LOOP_FIELDS:
                raise DefinitionError(f"references `loop.{ref.field}`; a loop has index", node.id)
            return
        target = self._nodes.get(ref.root)
        if target is None:
            raise DefinitionError(f"references unknown node or variable `{ref.root}`", node.id)
        if not self._precedence.ran_before(node.id, ref.root, kind == LOOP_CONDITION):
            raise DefinitionError(
                f"references `{ref.root}`, which does not run before it on every path", node.id
            )
        self._check_fields(node, ref)

    def _check_fields(self, node: Node, ref: Reference) -> None:
        target = self._nodes[ref.root]
        known = _known_fields(target, self._configs.get(target.id))
        if known is not None and ref.field is not None and ref.field not in known:
            fields = ", ".join(sorted(known)) or "nothing"
            raise DefinitionError(
                f"references `{ref.root}.{ref.field}`; {target.type} nodes output {fields}", node.id
            )


def expressions(node: Node, config: BaseModel) -> list[tuple[frozenset[Reference], str]]:
    return _config_expressions(node, config) + metric_expressions(node)


def metric_expressions(node: Node) -> list[tuple[frozenset[Reference], str]]:
    """A node's custom metrics: templates over the run's values and the node's own outputs."""
    try:
        return [(check_template(t), METRICS) for t in node.metrics.values()]
    except ExpressionError as exc:
        raise DefinitionError(f"metrics: {exc}", node.id) from exc


def _config_expressions(node: Node, config: BaseModel) -> list[tuple[frozenset[Reference], str]]:
    try:
        if isinstance(config, TemplateConfig):
            return [(check_template(config.template), PLAIN)]
        if isinstance(config, EndConfig):
            return [(check_template(t), PLAIN) for t in config.outputs.values()]
        if isinstance(config, ConditionConfig):
            return [(check_condition(config.condition), PLAIN)]
        if isinstance(config, LoopConfig):
            if config.condition is None:
                return []
            return [(check_condition(config.condition), LOOP_CONDITION)]
        if isinstance(config, ApiCallConfig):
            plain = [*([config.url] if config.url is not None else []), *config.headers.values()]
            plain += [v for v in config.query.values() if isinstance(v, str)]
            found = [(check_template(t), PLAIN) for t in plain]
            found.append((value_references(config.body), PLAIN))
            found.append((value_references(config.parameters), PLAIN))
            found += [(check_template(t), RESPONSE) for t in config.outputs.values()]
            return found
        if isinstance(config, LlmConfig):
            texts = [m.content for m in config.messages]
            texts += [t for t in (config.system, config.prompt) if t is not None]
            return [(check_template(t), PLAIN) for t in texts]
    except ExpressionError as exc:
        raise DefinitionError(str(exc), node.id) from exc
    return []


# Node-specific checks that do not depend on references


def static_prefix(source: str) -> str:
    return source.split("{{", 1)[0].split("{%", 1)[0]
