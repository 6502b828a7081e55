"""What a definition must satisfy to be stored: as a whole (`check_definition`), or, for a
graph built step by step, node by node (`check_draft`); `assess` decides between the two.

A graph under construction is incomplete on the way (a node added before it is connected is
unreachable), so what is wrong in itself (a bad config, a connection to nowhere) is told apart
from what only the whole graph can satisfy (an END, every node reachable).

Limits. Size (`max_definition_bytes`: 413) and counts (nodes, connections, fan-out: 400) are
checked before validation spends any time, draft or not. `assess` is CPU work: the store runs
it in a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import entry_points

from flowstream_shared.expressions import ExpressionError, check_condition, check_template
from flowstream_shared.validation import (
    DefinitionError,
    DefinitionLimits,
    check_definition_limits,
    check_metric_names,
    connection_problem,
    validate_definition,
)
from flowstream_shared.workflow import (
    BUILTIN_CONFIGS,
    RESERVED_NODE_IDS,
    ConditionConfig,
    Connection,
    EndConfig,
    Node,
    NodeType,
    TemplateConfig,
    WorkflowDefinition,
)
from pydantic import ValidationError

from flowstream_gateway.errors import ApiError, invalid_param
from flowstream_gateway.settings import GatewaySettings

NODE_PLUGIN_GROUP = "flowstream.nodes"


def _plugin_node_types() -> frozenset[str]:
    # Names only: the gateway validates that a type exists; the engine loads and runs it.
    return frozenset(ep.name for ep in entry_points(group=NODE_PLUGIN_GROUP))


@dataclass(frozen=True)
class WorkflowLimits:
    max_definition_bytes: int = 524_288
    max_versions: int = 50
    definition: DefinitionLimits = field(default_factory=DefinitionLimits)


def workflow_limits(settings: GatewaySettings) -> WorkflowLimits:
    return WorkflowLimits(
        max_definition_bytes=settings.max_definition_bytes,
        max_versions=settings.workflow_max_versions,
        definition=DefinitionLimits(
            max_nodes=settings.max_nodes,
            max_connections=settings.max_connections,
            max_fan_out=settings.max_fan_out,
        ),
    )


def check_limits(definition: WorkflowDefinition, limits: WorkflowLimits) -> None:
    """Size and counts, before any validation spends time on the definition."""
    size = len(definition.model_dump_json(by_alias=True))
    if size > limits.max_definition_bytes:
        raise ApiError(
            413,
            "payload_too_large",
            f"the definition is {size:,} bytes; the limit is {limits.max_definition_bytes:,} "
            "(FLOWSTREAM_MAX_DEFINITION_BYTES)",
        )
    try:
        check_definition_limits(definition, limits.definition)
    except DefinitionError as exc:
        raise invalid_param(str(exc)) from exc


def _problems(definition: WorkflowDefinition, limits: DefinitionLimits | None = None) -> list[str]:
    try:
        validate_definition(definition, _plugin_node_types(), limits)
    except DefinitionError as exc:
        return [str(exc)]
    return []


def check_definition(definition: WorkflowDefinition) -> None:
    problems = _problems(definition)
    if problems:
        raise invalid_param(problems[0])


# What even a graph under construction must satisfy ---------------------------------------------


def _check_node(node: Node, known_types: frozenset[str]) -> None:
    if node.id in RESERVED_NODE_IDS:
        raise DefinitionError(f"`{node.id}` is reserved for references", node.id)
    if node.type not in known_types:
        raise DefinitionError(f"unknown node type {node.type!r}", node.id)
    check_metric_names(node)
    try:
        for source in node.metrics.values():
            check_template(source)
    except ExpressionError as exc:
        raise DefinitionError(f"metrics: {exc}", node.id) from exc
    model = BUILTIN_CONFIGS.get(node.type)
    if model is None:
        return  # the full check (or a plugin) judges the rest
    try:
        config = model.model_validate(node.config)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise DefinitionError(f"config.{where}: {first['msg']}", node.id) from exc
    try:
        if isinstance(config, TemplateConfig):
            check_template(config.template)
        elif isinstance(config, EndConfig):
            for source in config.outputs.values():
                check_template(source)
        elif isinstance(config, ConditionConfig):
            check_condition(config.condition)
    except ExpressionError as exc:
        raise DefinitionError(str(exc), node.id) from exc


def _check_connection(connection: Connection, types: dict[str, str]) -> None:
    source, target = connection.source, connection.target
    for end in (source, target):
        if end not in types:
            raise DefinitionError(f"connection {source} → {target} names unknown node `{end}`")
    if types[target] == NodeType.START:
        raise DefinitionError("START cannot have incoming connections", target)
    if types[source] == NodeType.END:
        raise DefinitionError("END cannot have outgoing connections", source)
    # The same rule as the full check (CONDITION branches, PARALLEL branches, LOOP bodies).
    problem = connection_problem(connection.type, types[source], connection.condition)
    if problem:
        raise DefinitionError(problem, source)


def check_draft(definition: WorkflowDefinition) -> None:
    """Each node and connection on its own: unique known nodes with sound configs and expressions,
    connections between existing nodes, at most one START. Raise a 400 naming the node otherwise.

    What only the whole graph can satisfy (a START and an END, every node reachable, both
    CONDITION branches, references that run before their use) is left to `check_definition`.
    """
    known_types = frozenset({*NodeType, *BUILTIN_CONFIGS, *_plugin_node_types()})
    types: dict[str, str] = {}
    edges: set[tuple[str, str]] = set()
    try:
        for node in definition.nodes:
            if node.id in types:
                raise DefinitionError("duplicate node id", node.id)
            if node.type == NodeType.START and NodeType.START in types.values():
                raise DefinitionError("a workflow has exactly one START node", node.id)
            _check_node(node, known_types)
            types[node.id] = node.type
        for connection in definition.connections:
            _check_connection(connection, types)
            if (connection.source, connection.target) in edges:
                raise DefinitionError(
                    f"duplicate connection to `{connection.target}`", connection.source
                )
            edges.add((connection.source, connection.target))
    except DefinitionError as exc:
        raise invalid_param(str(exc)) from exc


def assess(
    definition: WorkflowDefinition, allow_draft: bool, limits: WorkflowLimits | None = None
) -> list[str]:
    """The problems that keep `definition` from running: none, or (drafts only) what it lacks.
    A definition past a limit is refused outright, draft or not."""
    limits = limits or WorkflowLimits()
    check_limits(definition, limits)
    problems = _problems(definition, limits.definition)
    if problems and not allow_draft:
        raise invalid_param(problems[0])
    if problems:
        check_draft(definition)
    return problems
