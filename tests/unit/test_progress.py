"""`workflow_progress` is reported when the whole percent changes, not after every node."""

from __future__ import annotations

from flowstream_shared.events import WorkflowProgress

from tests.unit.builders import chain, definition, end, start, template
from tests.unit.runs import of_type, run_of


async def test_a_small_workflow_reports_every_step() -> None:
    workflow = definition(
        [start(), template("a", "a"), end(answer="{{a.text}}")], chain("start", "a", "end")
    )
    run = run_of(workflow, {})
    await run.execute()
    progress = [e.data.completed_steps for e in of_type(run.log.events, WorkflowProgress)]
    assert progress == [1, 2, 3]


async def test_a_long_chain_reports_each_whole_percent_once() -> None:
    ids = [f"t{i}" for i in range(248)]
    workflow = definition(
        [start(), *(template(i, "x") for i in ids), end(answer=f"{{{{{ids[-1]}.text}}}}")],
        chain("start", *ids, "end"),
    )
    run = run_of(workflow, {})
    await run.execute()
    progress = of_type(run.log.events, WorkflowProgress)
    percents = [int(p.data.percent) for p in progress]
    assert len(progress) <= 101 and len(percents) == len(set(percents))
    assert progress[-1].data.completed_steps == progress[-1].data.total_steps == 250
