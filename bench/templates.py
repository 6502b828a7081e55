"""`python -m bench.templates`: the in-process cost of templates, runs and definition checks.

No NATS and no HTTP: the engine's executor runs against an event log in memory, so what is left
is the work the template budgets and size checks could add to each node. Figures, best of
`BENCH_ROUNDS` rounds (default 7):

- `greet render`: `Hello {{input.name}}!` rendered, per render;
- `greet run`: the greet example (START → streaming TEMPLATE → END) executed, per run;
- `chain run`: a 1,000-node chain of plain references executed once;
- `greet check` / `chain check`: validating each definition, as the gateway does on a write.

Times are CPU time of the benchmark's process (`time.process_time`), which other load on a
shared machine disturbs less than wall time.

Only APIs that predate the budgets are used, so the same script measures an older checkout too:
`PYTHONPATH=<checkout>/shared:<checkout>/services/engine python -m bench.templates`.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

from flowstream_engine.emitter import RunEmitter
from flowstream_engine.plan import plan_for
from flowstream_engine.run import RunExecutor
from flowstream_shared.commands import RunCommand, WorkflowSnapshot
from flowstream_shared.expressions import compile_template
from flowstream_shared.validation import validate_definition
from flowstream_shared.workflow import WorkflowDefinition

from bench.workflows import THREE_STEP, chain

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))


class _MemorySink:
    """Keeps nothing: every event counts as stored at once."""

    def append(self, event: str, payload: bytes, seq: int) -> None:
        return None

    async def stored(self, through: int) -> None:
        return None


def _command(definition: WorkflowDefinition) -> RunCommand:
    now = time.time()
    run_id = str(uuid.uuid4())
    return RunCommand(
        run_id=run_id,
        task_id=run_id,
        workflow=WorkflowSnapshot(workflow_id=definition.name, version=1, definition=definition),
        inputs={"name": "bench"},
        user_id="bench",
        created_at=now,
        deadline=now + 600,
    )


async def _run(definition: WorkflowDefinition) -> None:
    command = _command(definition)
    emitter = RunEmitter(_MemorySink(), command.run_id, command.task_id)
    finished = await RunExecutor(command, plan_for(command.workflow), emitter).execute()
    assert finished.status == "succeeded", finished.error


def _best(measure: Callable[[], float]) -> float:
    return min(measure() for _ in range(ROUNDS))


# CPU time of this process: other work on a shared machine moves it less than wall time.
_clock = time.process_time


def _per_call(call: Callable[[], object], count: int) -> Callable[[], float]:
    def measure() -> float:
        started = _clock()
        for _ in range(count):
            call()
        return (_clock() - started) / count

    return measure


def _per_run(definition: WorkflowDefinition, count: int) -> Callable[[], float]:
    def measure() -> float:
        async def runs() -> float:
            await _run(definition)  # plans and templates compiled: not what is measured
            started = _clock()
            for _ in range(count):
                await _run(definition)
            return (_clock() - started) / count

        return asyncio.run(runs())

    return measure


def measure() -> dict[str, float]:
    greet = WorkflowDefinition.model_validate(THREE_STEP)
    long_chain = WorkflowDefinition.model_validate(chain())
    template = compile_template("Hello {{input.name}}!")
    context: dict[str, Any] = {"input": {"name": "bench"}}
    return {
        "greet render (us)": _best(_per_call(lambda: template.render(context), 20_000)) * 1e6,
        "greet run (us)": _best(_per_run(greet, 500)) * 1e6,
        "chain run (ms)": _best(_per_run(long_chain, 3)) * 1e3,
        "greet check (us)": _best(_per_call(lambda: validate_definition(greet), 500)) * 1e6,
        "chain check (ms)": _best(_per_call(lambda: validate_definition(long_chain), 3)) * 1e3,
    }


def main() -> None:
    results = measure()
    width = max(len(name) for name in results)
    for name, value in results.items():
        print(f"{name:<{width}}  {value:10.1f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
