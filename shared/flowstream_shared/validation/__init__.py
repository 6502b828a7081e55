"""Checks a workflow definition before it is stored or run.

Every problem names the node (or connection) it is about: the API answers a 400 a user can act on.
The order: nodes, connections, LOOP bodies, reachability and cycles, PARALLEL branches, configs,
then every template's references.
"""

from __future__ import annotations

from collections.abc import Collection

from pydantic import BaseModel

from flowstream_shared.validation.errors import DefinitionError
from flowstream_shared.validation.http_nodes import check_api_call, check_llm
from flowstream_shared.validation.limits import DefinitionLimits, check_definition_limits
from flowstream_shared.validation.references import ReferenceRules, always_before, expressions
from flowstream_shared.validation.rules import RUNTIME_ROOTS
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
    LlmConfig,
    WorkflowDefinition,
    WorkflowGraph,
)

__all__ = [
    "RUNTIME_ROOTS",
    "DefinitionError",
    "DefinitionLimits",
    "check_definition_limits",
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
        model = BUILTIN_CONFIGS.get(node.type)
        if model is None:
            continue  # a plugin checks its own config
        config = configs[node.id] = node_config(node, model)
        if isinstance(config, ApiCallConfig):
            check_api_call(node, config)
        elif isinstance(config, LlmConfig):
            check_llm(node, config)

    rules = ReferenceRules(definition, configs, always_before(definition, graph, configs))
    for node in definition.nodes:
        if node.id not in configs:
            continue
        in_loop = graph.scope[node.id] is not None
        for refs, kind in expressions(node, configs[node.id]):
            rules.check(node, refs, in_loop=in_loop, kind=kind)
    return definition
