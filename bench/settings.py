"""The benchmark's knobs, read from the environment once.

`BENCH_SECONDS` (default 10) is the length of each load phase (one wrk run). Below 10 the run is a
quick one: every other phase shrinks with it (fewer streams, chain runs and samples), the results
go to `bench/results/quick.json`, and docs/benchmarks.md is left alone. Each size can still be set
on its own (`BENCH_STREAMS`, `BENCH_CHAIN_RUNS`, ...). `BENCH_SKIP` names phases to leave out,
comma separated: see `PHASES`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results"
CACHE_DIR = ROOT / "bench" / ".cache"  # git-ignored: the peer's installs live here
DOC = ROOT / "docs" / "benchmarks.md"
NATS_DOC = ROOT / "docs" / "nats.md"  # what authorization costs
README = ROOT / "README.md"
FULL_SECONDS = 10.0
PHASES = frozenset(
    {
        "ceilings", "restate", "chain", "disconnect", "engines", "gateways", "cluster",
        "streams", "history", "limits", "templates", "auth",
    }
)  # fmt: skip


def _int(name: str, full: int, quick: int, is_quick: bool) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else (quick if is_quick else full)


@dataclass(frozen=True)
class BenchSettings:
    seconds: float
    quick: bool
    streams: int  # concurrently open SSE streams on one gateway
    chain_runs: int
    disconnect_samples: int
    history_runs: int
    rtt_requests: int
    limit_runs: int  # runs per step of the queue's cost (bench/limits.py)
    template_alternations: int  # before/after pairs of bench/template_budgets.py
    skip: frozenset[str]

    @classmethod
    def from_env(cls) -> BenchSettings:
        seconds = float(os.environ.get("BENCH_SECONDS", str(FULL_SECONDS)))
        quick = seconds < FULL_SECONDS
        skip = frozenset(
            part.strip() for part in os.environ.get("BENCH_SKIP", "").split(",") if part.strip()
        )
        unknown = skip - PHASES
        if unknown:
            raise SystemExit(
                f"BENCH_SKIP: unknown phases {sorted(unknown)}; known: {sorted(PHASES)}"
            )
        return cls(
            seconds=seconds,
            quick=quick,
            streams=_int("BENCH_STREAMS", 10_000, 500, quick),
            chain_runs=_int("BENCH_CHAIN_RUNS", 5, 2, quick),
            disconnect_samples=_int("BENCH_DISCONNECTS", 20, 5, quick),
            history_runs=_int("BENCH_HISTORY_RUNS", 300, 60, quick),
            rtt_requests=_int("BENCH_RTT_REQUESTS", 5_000, 1_000, quick),
            limit_runs=_int("BENCH_LIMIT_RUNS", 500, 100, quick),
            template_alternations=_int("BENCH_TEMPLATE_ALTERNATIONS", 3, 1, quick),
            skip=skip,
        )

    def runs_phase(self, name: str) -> bool:
        return name not in self.skip

    @property
    def results_path(self) -> Path:
        return RESULTS_DIR / ("quick.json" if self.quick else "latest.json")
