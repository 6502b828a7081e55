"""Answers that fit one NATS message, whatever one run holds.

A reply to the gateway is one message, so it must stay under the server's `max_payload` (1 MiB by
default): a list of runs whose inputs are 600 KB each does not. Lists carry summaries of each
run's inputs and outputs (`*_truncated` flags say so); a run's detail carries its node
executions summarized to what is left of the budget, and only the first ones if even summaries
are too many (`nodes_truncated`); a timeline is paged (`next_after_seq`) and an event too large
for a page of its own is summarized (`truncated`).
"""

from __future__ import annotations

from typing import TypeVar

from flowstream_shared.history import (
    NodeExecutionRecord,
    RunDetail,
    RunPage,
    RunRecord,
    TimelineEntry,
    TimelinePage,
)
from flowstream_shared.sizes import bounded, json_size

# What a summary may leave out of its budget for the fields it does not summarize.
_RECORD_OVERHEAD = 1024
# The smallest summary worth sending for one value.
_MIN_VALUE_BYTES = 256

R = TypeVar("R", RunRecord, NodeExecutionRecord)


def summarized(record: R, value_bytes: int) -> R:
    """`record` with its inputs and outputs within `value_bytes` each."""
    inputs, inputs_cut = bounded(record.inputs, value_bytes)
    outputs, outputs_cut = bounded(record.outputs, value_bytes)
    if not (inputs_cut or outputs_cut):
        return record
    return record.model_copy(
        update={
            "inputs": inputs,
            "outputs": outputs,
            "inputs_truncated": inputs_cut,
            "outputs_truncated": outputs_cut,
        }
    )


def list_page(page: RunPage, value_bytes: int, budget: int) -> RunPage:
    """Each run's inputs and outputs summarized to `value_bytes`, smaller until the page fits."""
    while True:
        items = [summarized(run, value_bytes) for run in page.items]
        fitted = page.model_copy(update={"items": items})
        if value_bytes <= _MIN_VALUE_BYTES or json_size(fitted.model_dump()) <= budget:
            return fitted
        value_bytes //= 4


def run_detail(detail: RunDetail, budget: int) -> RunDetail:
    """The run whole if its inputs and outputs take a third of the budget each at most (runs
    within the input and output limits do); its node executions in what is left."""
    run = summarized(detail.run, budget // 3 - _RECORD_OVERHEAD)
    left = budget - json_size(run.model_dump())
    nodes, cut = fitted_nodes(detail.nodes, left)
    return RunDetail(run=run, nodes=nodes, nodes_truncated=cut)


def fitted_nodes(
    nodes: list[NodeExecutionRecord], budget: int
) -> tuple[list[NodeExecutionRecord], bool]:
    """The node executions within `budget`: each summarized to an equal share, and if even
    the smallest summaries do not fit, the first ones that do."""
    if not nodes or json_size([n.model_dump() for n in nodes]) <= budget:
        return nodes, False
    share = max(budget // (2 * len(nodes)) - _RECORD_OVERHEAD, _MIN_VALUE_BYTES)
    kept: list[NodeExecutionRecord] = []
    used = 2  # the list's brackets
    for node in nodes:
        small = summarized(node, share)
        size = json_size(small.model_dump()) + 1
        if used + size > budget:
            return kept, True
        kept.append(small)
        used += size
    return kept, False


def timeline_page(entries: list[TimelineEntry], budget: int, more: bool) -> TimelinePage:
    """As many entries as fit; an entry too large even for a page of its own is summarized.
    `more`: the store holds entries after these."""
    kept: list[TimelineEntry] = []
    used = 64  # the page's own fields
    for entry in entries:
        size = json_size(entry.model_dump()) + 1
        if used + size > budget:
            if kept:
                return TimelinePage(entries=kept, next_after_seq=kept[-1].seq)
            payload, _ = bounded(entry.payload, budget - used - _RECORD_OVERHEAD)
            small = entry.model_copy(update={"payload": payload, "truncated": True})
            following = entry.seq if len(entries) > 1 or more else None
            return TimelinePage(entries=[small], next_after_seq=following)
        kept.append(entry)
        used += size
    return TimelinePage(entries=kept, next_after_seq=kept[-1].seq if more and kept else None)
