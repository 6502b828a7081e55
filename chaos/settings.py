"""The suite's knobs, read from the environment once.

`CHAOS_RUNS` (default 1000) runs per scenario at `CHAOS_CONCURRENCY` (default 32) clients at
once. A run of every scenario at the full count writes `chaos/results/latest.json` and rewrites
the figures in docs/chaos.md; anything smaller (fewer runs, or scenarios named on the command
line) writes `chaos/results/quick.json` and leaves the doc alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "chaos" / "results"
WORK_DIR = ROOT / "chaos" / ".work"  # git-ignored: each process's log, the stores
DOC = ROOT / "docs" / "chaos.md"
FULL_RUNS = 1000


def _number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


@dataclass(frozen=True)
class ChaosSettings:
    runs: int
    concurrency: int
    # How long each API_CALL of the chaos workflow waits at the peer: runs last long enough
    # for faults to land in the middle of them.
    call_ms: int
    # Longest a client follows one run before it counts the run as stuck.
    run_patience_s: float
    # After the load: how long the log and the history projection get to settle.
    settle_s: float
    # The load phase ends after this long whatever happened: clients still following a run
    # then count as without a terminal event (and their runs, if unfinished, as stuck).
    load_limit_s: float
    # No faults at all: a baseline of the same load (`CHAOS_NO_FAULTS=1`).
    no_faults: bool

    @classmethod
    def from_env(cls) -> ChaosSettings:
        return cls(
            runs=int(_number("CHAOS_RUNS", FULL_RUNS)),
            concurrency=int(_number("CHAOS_CONCURRENCY", 40)),
            call_ms=int(_number("CHAOS_CALL_MS", 200)),
            run_patience_s=_number("CHAOS_RUN_PATIENCE_S", 90.0),
            settle_s=_number("CHAOS_SETTLE_S", 20.0),
            load_limit_s=_number("CHAOS_LOAD_LIMIT_S", 90.0),
            no_faults=os.environ.get("CHAOS_NO_FAULTS", "") not in ("", "0"),
        )

    @property
    def full(self) -> bool:
        return self.runs >= FULL_RUNS
