"""`make bench`: start the stack as `make run` does and measure it; a benchmark, not a test.

Prints a table and writes `bench/results/latest.json`. `BENCH_SECONDS` sets how long each
throughput phase runs (default 10); `BENCH_RUNS` the sequential run count (default 100).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
from flowstream_launcher.child_stack import child_stack
from flowstream_launcher.dev_auth import issue_token

from bench.e2e import concurrent, sequential

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "latest.json"
THREE_STEP = json.loads((ROOT / "examples" / "greet.json").read_text())


def _machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }


async def _main() -> None:
    seconds = float(os.environ.get("BENCH_SECONDS", "10"))
    runs = int(os.environ.get("BENCH_RUNS", "100"))
    with tempfile.TemporaryDirectory(prefix="flowstream-bench-") as data_dir:
        async with child_stack(Path(data_dir), cwd=ROOT) as stack:
            token = issue_token(stack.secret, "bench")
            limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
            async with httpx.AsyncClient(
                base_url=stack.base_url,
                headers={"Authorization": f"Bearer {token}"},
                timeout=60,
                limits=limits,
            ) as client:
                created = await client.post("/api/workflows", json=THREE_STEP)
                created.raise_for_status()
                url = f"/api/workflow/{created.json()['id']}/execute"
                body: dict[str, object] = {"inputs": {"name": "bench"}}
                await sequential(client, url, body, 20)  # warm-up: imports, caches, connections
                c1 = await sequential(client, url, body, runs)
                c32 = await concurrent(client, url, body, 32, seconds)
                c256 = await concurrent(client, url, body, 256, seconds)
    results = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": _machine(),
        "settings": {"bench_seconds": seconds, "sequential_runs": runs},
        "e2e": {
            "p50_ms_c1": c1.p50_ms,
            "p99_ms_c1": c1.p99_ms,
            "runs_per_s": c32.runs_per_s,
            "p50_ms_c32": c32.p50_ms,
            "p99_ms_c32": c32.p99_ms,
            "runs_per_s_c256": c256.runs_per_s,
            "p50_ms_c256": c256.p50_ms,
            "p99_ms_c256": c256.p99_ms,
            "detail": {"c1": asdict(c1), "c32": asdict(c32), "c256": asdict(c256)},
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(
        f"{'scenario':<28}{'runs':>8}{'runs/s':>10}"
        f"{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'errors':>8}"
    )
    for name, stats in (
        ("e2e, 1 client", c1),
        ("e2e, 32 clients", c32),
        ("e2e, 256 clients", c256),
    ):
        print(
            f"{name:<28}{stats.runs:>8}{stats.runs_per_s:>10}{stats.p50_ms:>10}"
            f"{stats.p90_ms:>10}{stats.p99_ms:>10}{stats.errors:>8}"
        )
    print(f"results: {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    asyncio.run(_main())
