"""Custom metrics of a workflow: what its nodes emitted, aggregated over the stats window."""

from __future__ import annotations

from collections import defaultdict

from flowstream_shared.history import CustomMetric, NodeExecutionRecord


def aggregate_custom_metrics(nodes: list[NodeExecutionRecord]) -> list[CustomMetric]:
    """One entry per (metric name, node), ordered by name then node."""
    samples: dict[tuple[str, str], list[tuple[float | None, float]]] = defaultdict(list)
    for node in nodes:
        for name, value in (node.metrics or {}).items():
            samples[(name, node.node_id)].append((node.finished_at, value))
    result: list[CustomMetric] = []
    for (name, node_id), points in sorted(samples.items()):
        values = [v for _, v in points]
        last_at, last = max(points, key=lambda p: p[0] or 0.0)
        result.append(
            CustomMetric(
                name=name,
                node_id=node_id,
                count=len(values),
                sum=sum(values),
                avg=round(sum(values) / len(values), 6),
                min=min(values),
                max=max(values),
                last=last,
                last_at=last_at,
            )
        )
    return result
