"""Summaries of values too large to send whole, and history answers that fit one NATS message."""

from __future__ import annotations

from typing import Any

import pytest
from flowstream_history import replies
from flowstream_shared.events import RunStatus
from flowstream_shared.history import NodeExecutionRecord, RunDetail, RunPage, RunRecord
from flowstream_shared.history import TimelineEntry as Entry
from flowstream_shared.sizes import MARK, bounded, json_size

BIG = "x" * 600_000
BUDGET = 768 << 10


@pytest.mark.parametrize(
    "value",
    [
        {"text": BIG},
        {"items": [BIG[:1000]] * 5000},
        {"nested": {"deeper": {"text": BIG, "n": 1}}},
        {f"k{i}": "v" * 100 for i in range(20_000)},
    ],
)
def test_a_summary_fits_stays_an_object_and_marks_its_cuts(value: dict[str, Any]) -> None:
    summary, cut = bounded(value, 4096)
    assert cut and isinstance(summary, dict)
    assert json_size(summary) <= 4096
    assert MARK in str(summary)


def test_a_value_that_fits_is_left_alone() -> None:
    value = {"a": [1, 2, 3], "b": "short"}
    assert bounded(value, 4096) == (value, False)
    assert bounded(None, 10) == (None, False)


def _run(i: int) -> RunRecord:
    return RunRecord(
        id=f"run-{i}",
        workflow_id="wf",
        status=RunStatus.SUCCEEDED,
        inputs={"text": BIG},
        outputs={"answer": BIG},
    )


def test_a_list_of_runs_with_large_values_fits_one_reply() -> None:
    page = RunPage(items=[_run(i) for i in range(20)], total=20, page=1, size=20, pages=1)
    assert json_size(page.model_dump()) > 20 * BUDGET  # what made lists answer 503

    fitted = replies.list_page(page, 4096, BUDGET)

    assert json_size(fitted.model_dump()) <= BUDGET
    assert all(r.inputs_truncated and r.outputs_truncated for r in fitted.items)
    assert [r.id for r in fitted.items] == [r.id for r in page.items]


def _node(i: int, value: str) -> NodeExecutionRecord:
    return NodeExecutionRecord(
        id=f"n{i}",
        run_id="run-0",
        workflow_id="wf",
        node_id=f"t{i}",
        node_type="TEMPLATE",
        status="succeeded",
        inputs={"v": value},
        outputs={"text": value},
    )


def test_a_run_detail_summarizes_its_nodes_to_fit() -> None:
    detail = RunDetail(run=_run(0), nodes=[_node(i, BIG[:200_000]) for i in range(10)])

    fitted = replies.run_detail(detail, BUDGET)

    assert json_size(fitted.model_dump()) <= BUDGET
    assert len(fitted.nodes) == 10 and not fitted.nodes_truncated
    assert all(n.outputs_truncated for n in fitted.nodes)


def test_a_run_detail_with_too_many_nodes_keeps_the_first_and_says_so() -> None:
    detail = RunDetail(run=_run(0), nodes=[_node(i, "v" * 300) for i in range(20_000)])

    fitted = replies.run_detail(detail, BUDGET)

    assert json_size(fitted.model_dump()) <= BUDGET
    assert fitted.nodes_truncated and 0 < len(fitted.nodes) < 20_000
    assert fitted.nodes[0].node_id == "t0"


def test_a_timeline_is_paged_by_bytes_and_a_huge_event_is_summarized() -> None:
    entries = [
        Entry(seq=i, event="node_finished", payload={"o": "v" * 100_000}) for i in range(1, 21)
    ]

    first = replies.timeline_page(entries, BUDGET, more=False)
    assert json_size(first.model_dump()) <= BUDGET
    assert first.next_after_seq == first.entries[-1].seq < 20

    huge = [Entry(seq=7, event="node_finished", payload={"o": BIG * 2})]
    alone = replies.timeline_page(huge, BUDGET, more=False)
    assert alone.entries[0].truncated and json_size(alone.model_dump()) <= BUDGET
    assert alone.next_after_seq is None

    last = replies.timeline_page(entries[-2:], BUDGET, more=False)
    assert [e.seq for e in last.entries] == [19, 20] and last.next_after_seq is None
