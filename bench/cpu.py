"""CPU per run, per process: user + system time from /proc/<pid>/stat before and after a phase.

A process is counted with those of its live descendants that are not counted on their own
(hypercorn serves from a worker process it starts; the launcher's children, the services, are each
counted under their own name). The load generator is counted too, from this
process's `RUSAGE_CHILDREN` (the CPU of children it has waited for): wrk runs and exits inside the
phase, and nothing else this process started exits during one.

The machine is shared, so each phase also says how busy the whole machine was (`/proc/stat`):
`other` is the cores busy with anything but the processes counted, the load generator and this
harness (other tenants' work takes CPU from the system measured), and `steal` the time the
hypervisor gave the virtual CPUs to someone else.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
LOAD_GENERATOR = "wrk"


def _stat_fields(pid: int) -> list[str]:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2 :].split()  # the name may hold spaces and parentheses


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int(_stat_fields(int(entry.name))[1])
            except (OSError, ValueError, IndexError):  # gone meanwhile
                continue
            children.setdefault(parent, []).append(int(entry.name))
    return children


def tree_cpu_seconds(
    pid: int, children: Mapping[int, list[int]] | None = None, skip: Collection[int] = ()
) -> float:
    """CPU time of a process and of its live descendants, but for those in `skip` (and theirs)."""
    tree = children if children is not None else _children()
    total, stack = 0.0, [pid]
    while stack:
        current = stack.pop()
        try:
            total += cpu_seconds(current)
        except OSError:  # exited meanwhile
            continue
        stack.extend(child for child in tree.get(current, []) if child not in skip)
    return total


def _waited_children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class MachineCpu:
    busy: float  # seconds, all CPUs: user, nice, system, irq, softirq (guest is in user)
    steal: float


def machine_cpu(stat: Path = Path("/proc/stat")) -> MachineCpu:
    """The machine's CPU time so far, from the first (all CPUs) line of /proc/stat."""
    ticks = [int(v) for v in stat.read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (ticks + [0] * 8)[:8]
    return MachineCpu((user + nice + system + irq + softirq) / CLOCK_TICKS, steal / CLOCK_TICKS)


@dataclass
class CpuMeter:
    """`start()` before a phase, `per_run()` after it."""

    processes: Mapping[str, int]
    _before: dict[str, float] = field(default_factory=dict)
    _machine_before: MachineCpu = MachineCpu(0.0, 0.0)
    _own_before: float = 0.0
    _started: float = 0.0

    def _now(self) -> dict[str, float]:
        children = _children()
        counted = set(self.processes.values())
        now = {
            name: tree_cpu_seconds(pid, children, skip=counted)
            for name, pid in self.processes.items()
        }
        now[LOAD_GENERATOR] = _waited_children_cpu()
        return now

    def start(self) -> None:
        self._before = self._now()
        self._machine_before = machine_cpu()
        self._own_before = _own_cpu()
        self._started = time.perf_counter()

    def per_run(self, runs: int) -> dict[str, dict[str, float | None]]:
        """CPU milliseconds per run for each process, how many cores each kept busy, and how
        busy the machine was."""
        wall = time.perf_counter() - self._started
        used = {name: spent - self._before[name] for name, spent in self._now().items()}
        total = sum(used.values())
        machine = machine_cpu()
        busy = machine.busy - self._machine_before.busy
        other = max(busy - total - (_own_cpu() - self._own_before), 0.0)  # never below zero

        def cores(seconds: float) -> float | None:
            return round(seconds / wall, 2) if wall else None

        return {
            "ms_per_run": {
                name: round(seconds * 1000 / runs, 3) if runs else None
                for name, seconds in [*used.items(), ("total", total)]
            },
            "cores": {name: cores(seconds) for name, seconds in [*used.items(), ("total", total)]},
            "machine": {
                "busy_cores": cores(busy),
                "other_cores": cores(other),
                "steal_cores": cores(machine.steal - self._machine_before.steal),
            },
        }
