"""CPU per run from /proc: a process with its own children, never twice; and the machine's
load besides."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bench.cpu import CLOCK_TICKS, CpuMeter, MachineCpu, machine_cpu

# A parent that sleeps and a child that burns CPU for `seconds`.
BUSY_CHILD = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time\\nend = time.time() + 1.0\\n"
                          "while time.time() < end: pass"])
print(child.pid, flush=True)
child.wait()
"""


@pytest.fixture
async def parent_and_child() -> AsyncIterator[tuple[int, int]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", BUSY_CHILD, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    child = int((await process.stdout.readline()).decode())
    yield process.pid, child
    await process.wait()


async def test_a_process_is_counted_with_its_children(
    parent_and_child: tuple[int, int],
) -> None:
    parent, _ = parent_and_child
    meter = CpuMeter({"parent": parent})
    meter.start()
    await asyncio.sleep(0.6)
    ms_per_run = meter.per_run(10)["ms_per_run"]
    assert (ms_per_run["parent"] or 0) > 20  # the child's busy loop, over 10 runs


async def test_a_child_counted_on_its_own_is_not_counted_in_its_parent(
    parent_and_child: tuple[int, int],
) -> None:
    parent, child = parent_and_child
    meter = CpuMeter({"parent": parent, "child": child})
    meter.start()
    await asyncio.sleep(0.6)
    ms_per_run = meter.per_run(10)["ms_per_run"]
    assert (ms_per_run["child"] or 0) > 20
    assert (ms_per_run["parent"] or 0) < 5


def test_the_machines_cpu_is_read_from_the_all_cpus_line(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    ticks = CLOCK_TICKS
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat.write_text(f"cpu  {ticks} {ticks} {ticks} 999 999 {ticks} {ticks} {2 * ticks} 0 0\n")
    assert machine_cpu(stat) == MachineCpu(busy=5.0, steal=2.0)


async def test_a_busy_process_not_measured_counts_as_others_load(
    parent_and_child: tuple[int, int],
) -> None:
    meter = CpuMeter({})
    meter.start()
    await asyncio.sleep(0.6)
    machine = meter.per_run(10)["machine"]
    assert (machine["other_cores"] or 0) > 0.2  # the child's busy loop, at least
    assert (machine["busy_cores"] or 0) >= (machine["other_cores"] or 0)
