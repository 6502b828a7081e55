"""Custom metrics a node emits: its `metrics` templates, and what a plugin node reports.

A node's `metrics` maps names to templates evaluated when the node succeeds, over the run's
values and the node's own outputs (`{"rows": "{{fetch.body.count}}"}` on node `fetch`). A plugin
node may also return `NodeResult.metadata["metrics"]`. Values must be numbers (a boolean counts
as 0 or 1); one that is not, or that fails to evaluate, is left out and its error reported next
to the others: a metric never fails the node. Both go to `execution_metadata.metrics` of the
node's `node_finished`, which history records.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Mapping
from typing import Any

from flowstream_shared.expressions import ExpressionError
from flowstream_shared.workflow import Node

from flowstream_engine.nodes.base import NodeResult
from flowstream_engine.render.renderer import Renderer


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


async def custom_metrics(
    node: Node, result: NodeResult, variables: Mapping[str, Any], render: Renderer
) -> tuple[dict[str, float], dict[str, str]]:
    """(metrics, errors by metric name) for a node that succeeded."""
    values: dict[str, float] = {}
    errors: dict[str, str] = {}
    reported = result.metadata.get("metrics")
    candidates: dict[str, Any] = dict(reported) if isinstance(reported, Mapping) else {}
    if node.metrics:
        scope = ChainMap({node.id: result.outputs}, dict(variables))
        for name, template in node.metrics.items():
            try:
                candidates[name] = await render.value(template, scope)
            except ExpressionError as exc:
                errors[name] = str(exc)
    for name, raw in candidates.items():
        number = _number(raw)
        if number is None:
            errors[str(name)] = f"not a number: {raw!r}"[:200]
        else:
            values[str(name)] = number
    return values, errors
