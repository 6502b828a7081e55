"""How large a definition may be: node and connection counts, and fan-out.

Checked before anything else, so a definition past a limit costs a count, not a validation. The
gateway sets the values from its settings (`FLOWSTREAM_MAX_NODES`, `FLOWSTREAM_MAX_CONNECTIONS`,
`FLOWSTREAM_MAX_FAN_OUT`); the size in bytes is the gateway's own check.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from flowstream_shared.validation.errors import DefinitionError
from flowstream_shared.workflow import WorkflowDefinition


@dataclass(frozen=True)
class DefinitionLimits:
    max_nodes: int = 2_000
    max_connections: int = 5_000
    # Outgoing connections of one node: the branches of a PARALLEL, or what one node fans out to.
    max_fan_out: int = 128


def check_definition_limits(definition: WorkflowDefinition, limits: DefinitionLimits) -> None:
    if len(definition.nodes) > limits.max_nodes:
        raise DefinitionError(
            f"the definition has {len(definition.nodes):,} nodes; the limit is "
            f"{limits.max_nodes:,} (FLOWSTREAM_MAX_NODES)"
        )
    if len(definition.connections) > limits.max_connections:
        raise DefinitionError(
            f"the definition has {len(definition.connections):,} connections; the limit is "
            f"{limits.max_connections:,} (FLOWSTREAM_MAX_CONNECTIONS)"
        )
    if len(definition.connections) <= limits.max_fan_out:
        return  # no node can have more outgoing connections than there are
    fan_out = Counter(conn.source for conn in definition.connections)
    if fan_out:
        source, count = fan_out.most_common(1)[0]
        if count > limits.max_fan_out:
            raise DefinitionError(
                f"has {count:,} outgoing connections (PARALLEL branches or fan-out); the limit "
                f"is {limits.max_fan_out:,} (FLOWSTREAM_MAX_FAN_OUT)",
                source,
            )
