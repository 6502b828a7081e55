"""What the template budgets and size checks cost: the templates phase of `make bench`.

`bench.templates` measures the in-process figures (a render, the greet example and the
1,000-node chain executed, both definitions validated; process CPU time, best of
`BENCH_ROUNDS`). This phase runs it in child processes, alternately against this checkout and
against the code from just before the budgets (`BASELINE`, its `shared/` and `services/engine/`
exported from the repository's history into a temporary directory and put first on
`PYTHONPATH`), `alternations` times each, and keeps each figure's best on each side: the noise
of a shared machine lands on both. `cost_pct` is the worst relative change of the figures a run
pays on every node (render, greet run, chain run): the budgets' goal is ≤ 5 %
([ADR 0027](../docs/adr/0027-template-budgets-and-render-processes.md)).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from bench.settings import ROOT

# The last commit before templates ran in a bounded sandbox (budgets, guarded operations).
BASELINE = "5f6caf0cc29c8f5b2b4a27392b4e8de834c5bf14"
BASELINE_PATHS = ("shared", "services/engine")
# bench.templates' figure names → the results' keys.
FIGURES = {
    "greet render (us)": "greet_render_us",
    "greet run (us)": "greet_run_us",
    "chain run (ms)": "chain_run_ms",
    "greet check (us)": "greet_check_us",
    "chain check (ms)": "chain_check_ms",
}
# What every run pays on its nodes; validation happens once per definition write.
ON_EVERY_RUN = ("greet_render_us", "greet_run_us", "chain_run_ms")


class TemplateBenchError(RuntimeError):
    pass


async def _export_baseline(into: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        "git", "archive", "--format=tar", BASELINE, *BASELINE_PATHS,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    archive, errors = await process.communicate()
    if process.returncode != 0:
        raise TemplateBenchError(f"git archive {BASELINE[:12]}: {errors.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")


async def _figures(pythonpath: Path | None) -> dict[str, float]:
    """One `python -m bench.templates`, on this checkout or on the baseline's packages."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(str(pythonpath / p) for p in BASELINE_PATHS)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.templates",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, errors = await process.communicate()
    if process.returncode != 0:
        raise TemplateBenchError(f"bench.templates failed: {errors.decode().strip()[-600:]}")
    printed = json.loads(out.decode().strip().splitlines()[-1])  # its last line is the JSON
    return {FIGURES[name]: value for name, value in printed.items() if name in FIGURES}


def _best(samples: list[dict[str, float]]) -> dict[str, float]:
    return {key: min(s[key] for s in samples if key in s) for key in FIGURES.values()}


def compare(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """Each figure before and after, its change in percent, and the worst change of those every
    run pays."""
    change = {
        key: round((after[key] / before[key] - 1) * 100, 1)
        for key in FIGURES.values()
        if before.get(key) and key in after
    }
    paid = [change[key] for key in ON_EVERY_RUN if key in change]
    return {
        "baseline": BASELINE,
        "before": {key: round(value, 2) for key, value in before.items()},
        "after": {key: round(value, 2) for key, value in after.items()},
        "change_pct": change,
        "cost_pct": max(paid) if paid else None,
    }


async def measure(alternations: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="flowstream-bench-templates-") as tmp:
        baseline = Path(tmp)
        await _export_baseline(baseline)
        before: list[dict[str, float]] = []
        after: list[dict[str, float]] = []
        for _ in range(alternations):
            before.append(await _figures(baseline))
            after.append(await _figures(None))
    return {**compare(_best(before), _best(after)), "alternations": alternations}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(measure(3)), indent=2))
