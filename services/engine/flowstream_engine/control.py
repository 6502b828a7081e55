"""Control requests: the KV bucket is the truth, the core message makes it fast.

One KV watcher and one core subscription per process (not one per run) feed this registry. A
flag that arrives before its run starts here is kept, so the run stops (or starts paused) as
soon as it starts.

Two flags per run, under two KV keys, so a later pause or resume can never overwrite a cancel:
`<run_id>` holds a CANCEL (final: nothing un-cancels a run) and `<run_id>.pause` the latest
PAUSE, RESUME or STEP (a debugger's step names the pause it answers, so applying it twice, or
on an engine that took the run over, starts nothing twice). The core message carries the
action, so both arrive on the run's one control subject. The registry keeps the latest pause
flag per run; a stale one delivered late by the other path is corrected when the latest arrives.
"""

from __future__ import annotations

import logging
import time

from flowstream_shared.commands import ControlAction, ControlCommand
from flowstream_shared.topology import CONTROL_TTL_S

from flowstream_engine.run import RunExecutor

log = logging.getLogger(__name__)

PAUSE_KEY_SUFFIX = ".pause"


def pause_key(run_id: str) -> str:
    """The KV key of a run's pause/resume flag (the cancel flag's key is the run id itself)."""
    return f"{run_id}{PAUSE_KEY_SUFFIX}"


def run_id_of_key(key: str) -> str:
    """The run a control KV key belongs to."""
    return key.removesuffix(PAUSE_KEY_SUFFIX)


class ControlRegistry:
    def __init__(self) -> None:
        self._draining = False
        self._active: dict[str, RunExecutor] = {}
        self._cancels: dict[str, tuple[float, ControlCommand]] = {}
        self._pauses: dict[str, tuple[float, ControlCommand]] = {}

    @property
    def active_runs(self) -> int:
        return len(self._active)

    def drain(self) -> None:
        """The engine is stopping: no node that acts on the outside world starts any more (it
        waits in `RunExecutor.durable` for the cancellation that hands its run back), since the
        engine resuming the run would act a second time."""
        self._draining = True
        for executor in self._active.values():
            executor.shutting_down = True

    def register(self, run_id: str, executor: RunExecutor) -> None:
        if self._draining:
            executor.shutting_down = True
        self._active[run_id] = executor
        pause = self._pauses.get(run_id)
        if pause is not None:
            self._apply(executor, pause[1])
        cancel = self._cancels.get(run_id)
        if cancel is not None:
            self._apply(executor, cancel[1])

    def unregister(self, run_id: str) -> None:
        self._active.pop(run_id, None)

    def is_cancelled(self, run_id: str) -> bool:
        return run_id in self._cancels

    def is_paused(self, run_id: str) -> bool:
        flag = self._pauses.get(run_id)
        return flag is not None and flag[1].action == ControlAction.PAUSE

    def receive(self, run_id: str, command: ControlCommand) -> None:
        now = time.monotonic()
        flags = self._cancels if command.action == ControlAction.CANCEL else self._pauses
        flags[run_id] = (now, command)
        self._prune(now)
        executor = self._active.get(run_id)
        if executor is not None:
            self._apply(executor, command)

    def _apply(self, executor: RunExecutor, command: ControlCommand) -> None:
        if command.action == ControlAction.CANCEL:
            executor.request_stop(command.reason)
        elif command.action == ControlAction.PAUSE:
            executor.request_pause()
        elif command.action == ControlAction.RESUME:
            executor.request_resume()
        elif command.action == ControlAction.STEP:
            executor.request_step(command.pause_seq)
        else:  # pragma: no cover - a newer gateway's action
            log.info("control action %s is not supported", command.action)

    def _prune(self, now: float) -> None:
        # Flags outlive their runs only as long as the bucket keeps them.
        if (len(self._cancels) + len(self._pauses)) % 1024:
            return
        horizon = now - CONTROL_TTL_S
        for flags in (self._cancels, self._pauses):
            for run_id in [r for r, (at, _) in flags.items() if at < horizon]:
                del flags[run_id]
