"""Checks a workflow definition before it is stored or run.

Every problem names the node (or connection) it is about: the API answers a 400 a user can act on.
The order: nodes, connections, LOOP bodies, reachability and cycles, PARALLEL branches, configs,
then every template's references.
"""

from __future__ import annotations

from collections.abc import Collection

from pydantic import BaseModel

from flowstream_shared.expressions import check_condition
from flowstream_shared.validation.errors import DefinitionError
from flowstream_shared.validation.http_nodes import check_api_call, check_llm
from flowstream_shared.validation.limits import DefinitionLimits, check_definition_limits
from flowstream_shared.validation.references import (
    ReferenceRules,
    always_before,
    expressions,
    metric_expressions,
)
from flowstream_shared.validation.rules import METRIC_NAME, PLAIN, RUNTIME_ROOTS
from flowstream_shared.validation.structure import (
    check_branches_and_error_targets,
    check_connections,
    check_loops,
    check_nodes,
    check_reachable_and_acyclic,
    connection_problem,
    node_config,
)
from flowstream_shared.workflow import (
    BUILTIN_CONFIGS,
    ApiCallConfig,
    ConditionConfig,
    ConnectionType,
    LlmConfig,
    Node,
    WorkflowDefinition,
    WorkflowGraph,
)

__all__ = [
    "RUNTIME_ROOTS",
    "DefinitionError",
    "DefinitionLimits",
    "check_definition_limits",
    "check_metric_names",
    "connection_problem",
    "validate_definition",
]


def validate_definition(
    definition: WorkflowDefinition,
    plugin_types: Collection[str] = (),
    limits: DefinitionLimits | None = None,
) -> WorkflowDefinition:
    """Raise :class:`DefinitionError` naming the first problem; return the definition if sound."""
    check_definition_limits(definition, limits or DefinitionLimits())
    check_nodes(definition, {*BUILTIN_CONFIGS, *plugin_types})
    check_connections(definition)
    graph = WorkflowGraph(definition)
    check_loops(graph)
    check_reachable_and_acyclic(definition, graph)
    check_branches_and_error_targets(graph)

    configs: dict[str, BaseModel] = {}
    for node in definition.nodes:
        check_metric_names(node)
        model = BUILTIN_CONFIGS.get(node.type)
        if model is None:
            continue  # a plugin checks its own config
        config = configs[node.id] = node_config(node, model)
        if isinstance(config, ApiCallConfig):
            check_api_call(node, config)
        elif isinstance(config, LlmConfig):
            check_llm(node, config)
        elif isinstance(config, ConditionConfig):
            check_branch_paths(node, config)

    rules = ReferenceRules(definition, configs, always_before(definition, graph, configs))
    for node in definition.nodes:
        in_loop = graph.scope[node.id] is not None
        found = expressions(node, configs[node.id]) if node.id in configs else []
        if node.id not in configs:
            found = metric_expressions(node)
        for refs, kind in found:
            rules.check(node, refs, in_loop=in_loop, kind=kind)
    for conn in graph.connections:
        if conn.type != ConnectionType.CONDITIONAL or conn.condition is None:
            continue
        # Evaluated once its source has run: it may read the source and what ran before it.
        source = definition.node(conn.source)
        refs = check_condition(conn.condition)
        try:
            rules.check(
                source,
                refs,
                in_loop=graph.scope[conn.source] is not None,
                kind=PLAIN,
                after_itself=True,
            )
        except DefinitionError as exc:
            message = str(exc).removeprefix(f"node `{conn.source}`: ")
            raise DefinitionError(
                f"the condition of its connection to `{conn.target}` {message}", conn.source
            ) from exc
    return definition


def check_metric_names(node: Node) -> None:
    for name in node.metrics:
        if not METRIC_NAME.match(name):
            raise DefinitionError(
                f"metrics: {name!r} is not a metric name (letters, digits, `_` and `.`)", node.id
            )


def check_branch_paths(node: Node, config: ConditionConfig) -> None:
    """A `true_path` / `false_path` still in the config names no node of the workflow."""
    for key in ("true_path", "false_path"):
        target = getattr(config, key)
        if target is not None:
            raise DefinitionError(
                f"config.{key}: no node `{target}` (by id or name) in this workflow", node.id
            )
