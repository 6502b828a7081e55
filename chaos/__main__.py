"""`python -m chaos [scenario ...]`: run the scenarios (all by default), write the results, and
with a full run rewrite the figures in docs/chaos.md. Exits 1 when any promise was broken."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

from flowstream_launcher.nats_server import nats_server_binary

from chaos.processes import log
from chaos.report import print_summary, write_doc
from chaos.runner import run_scenario
from chaos.scenarios import BY_NAME, SCENARIOS, Scenario
from chaos.settings import RESULTS_DIR, WORK_DIR, ChaosSettings


def _machine() -> dict[str, Any]:
    version = subprocess.run(
        [nats_server_binary(), "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.machine(),
        "python": platform.python_version(),
        "nats_server": version,
    }


def _chosen(names: list[str]) -> list[Scenario]:
    unknown = [name for name in names if name not in BY_NAME]
    if unknown:
        raise SystemExit(f"unknown scenarios {unknown}; known: {sorted(BY_NAME)}")
    return [BY_NAME[name] for name in names] if names else list(SCENARIOS)


async def _run(scenarios: list[Scenario], settings: ChaosSettings) -> dict[str, Any]:
    # SIGTERM (a `timeout`, a CI runner) cancels like Ctrl-C: every scenario stops its stack.
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    started = time.monotonic()
    results: dict[str, Any] = {
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": _machine(),
        "settings": {"runs": settings.runs, "concurrency": settings.concurrency},
        "scenarios": {},
    }
    for scenario in scenarios:
        log(f"scenario {scenario.name}: {scenario.description}")
        try:
            figures = await run_scenario(scenario, settings, WORK_DIR / stamp / scenario.name)
        except Exception as exc:
            log(f"scenario {scenario.name} could not run: {exc!r}")
            figures = {"error": repr(exc), "failed_checks": ["scenario_error"]}
        results["scenarios"][scenario.name] = figures
    results["total_seconds"] = round(time.monotonic() - started)
    return results


def main() -> int:
    settings = ChaosSettings.from_env()
    scenarios = _chosen(sys.argv[1:])
    results = asyncio.run(_run(scenarios, settings))
    full = settings.full and len(scenarios) == len(SCENARIOS)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / ("latest.json" if full else "quick.json")
    path.write_text(json.dumps(results, indent=2) + "\n")
    log(f"results in {path}")
    if full:
        write_doc(results)
    print_summary(results)
    broken = any(s.get("failed_checks") for s in results["scenarios"].values())
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
