"""Cancel requests: the KV bucket is the truth, the core message makes it fast.

One KV watcher and one core subscription per process (not one per run) feed this registry. A
flag that arrives before its run starts here is kept, so the run stops as soon as it starts.
"""

from __future__ import annotations

import logging
import time

from flowstream_shared.commands import ControlAction, ControlCommand
from flowstream_shared.topology import CONTROL_TTL_S

from flowstream_engine.run import RunExecutor

log = logging.getLogger(__name__)


class ControlRegistry:
    def __init__(self) -> None:
        self._active: dict[str, RunExecutor] = {}
        self._flags: dict[str, tuple[float, ControlCommand]] = {}

    @property
    def active_runs(self) -> int:
        return len(self._active)

    def register(self, run_id: str, executor: RunExecutor) -> None:
        self._active[run_id] = executor
        flag = self._flags.get(run_id)
        if flag is not None:
            self._apply(executor, flag[1])

    def unregister(self, run_id: str) -> None:
        self._active.pop(run_id, None)

    def is_cancelled(self, run_id: str) -> bool:
        flag = self._flags.get(run_id)
        return flag is not None and flag[1].action == ControlAction.CANCEL

    def receive(self, run_id: str, command: ControlCommand) -> None:
        now = time.monotonic()
        self._flags[run_id] = (now, command)
        self._prune(now)
        executor = self._active.get(run_id)
        if executor is not None:
            self._apply(executor, command)

    def _apply(self, executor: RunExecutor, command: ControlCommand) -> None:
        if command.action == ControlAction.CANCEL:
            executor.request_stop(command.reason)
        else:
            log.info("control action %s is not supported yet", command.action)

    def _prune(self, now: float) -> None:
        # Flags outlive their runs only as long as the bucket keeps them.
        if len(self._flags) % 1024:
            return
        horizon = now - CONTROL_TTL_S
        for run_id in [r for r, (at, _) in self._flags.items() if at < horizon]:
            del self._flags[run_id]
