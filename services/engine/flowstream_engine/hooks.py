"""Hooks: code installed next to the engine that observes runs, through entry points.

A distribution declares, in the group `flowstream.hooks`, an object (a class is instantiated
without arguments; a module works too) with any of three async functions::

    async def before_execution(event: WorkflowStarted) -> None
    async def on_node_execution(event: NodeFinished) -> None
    async def after_execution(event: WorkflowFinished) -> None

They are given the run's own events (`flowstream_shared.events`) as the run emits them, and they
observe only: a hook cannot change or delay a run. Each run's hook calls go through one queue,
in the run's order, off the run's path; each call is bounded by `FLOWSTREAM_HOOK_TIMEOUT_S`.
A hook that raises or times out is logged and counted (`flowstream_engine_hook_failures_total`)
and the next call goes ahead. Calls are best effort: a run taken over by another engine does
not call `before_execution` again, and calls still queued when an engine stops are dropped.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from flowstream_shared.events import EventName, RunEventBase
from prometheus_client import Counter

from flowstream_engine.settings import EngineSettings

HOOK_GROUP = "flowstream.hooks"
HOOK_NAMES = ("before_execution", "on_node_execution", "after_execution")
_HOOK_FOR = {
    EventName.WORKFLOW_STARTED: "before_execution",
    EventName.NODE_FINISHED: "on_node_execution",
    EventName.WORKFLOW_FINISHED: "after_execution",
}

log = logging.getLogger(__name__)

# Registered in each EngineMetrics registry (see `flowstream_engine.metrics`), not the default one.
HOOK_CALLS = Counter("flowstream_engine_hook_calls", "Hook calls made", ["hook"], registry=None)
HOOK_FAILURES = Counter(
    "flowstream_engine_hook_failures",
    "Hook calls that raised or timed out",
    ["hook", "reason"],
    registry=None,
)

HookFunction = Callable[[RunEventBase], Awaitable[Any]]


@dataclass(frozen=True)
class Hook:
    plugin: str  # the entry point's name
    function: HookFunction


@dataclass
class HookSet:
    by_name: dict[str, list[Hook]] = field(default_factory=dict)
    timeout_s: float = 5.0

    def for_event(self, event: EventName) -> list[Hook]:
        name = _HOOK_FOR.get(event)
        return self.by_name.get(name, []) if name else []

    def __bool__(self) -> bool:
        return any(self.by_name.values())


def load_hooks(timeout_s: float) -> HookSet:
    hooks = HookSet(timeout_s=timeout_s)
    for entry in entry_points(group=HOOK_GROUP):
        try:
            loaded = entry.load()
            target = loaded() if inspect.isclass(loaded) else loaded
        except Exception:
            log.exception("hook %s (%s) failed to load; left out", entry.name, entry.value)
            continue
        found = False
        for name in HOOK_NAMES:
            function = getattr(target, name, None)
            if function is None:
                continue
            if not inspect.iscoroutinefunction(function):
                log.warning("hook %s: %s is not an async function; left out", entry.name, name)
                continue
            hooks.by_name.setdefault(name, []).append(Hook(entry.name, function))
            found = True
        if not found:
            log.warning("hook %s (%s) defines none of %s", entry.name, entry.value, HOOK_NAMES)
    return hooks


@cache
def installed_hooks() -> HookSet:
    """The process's hooks, loaded once, on first use."""
    return load_hooks(EngineSettings().hook_timeout_s)


def reload_hooks() -> None:
    installed_hooks.cache_clear()


# Queued calls outlive the run that made them; keep their tasks referenced until done.
_draining: set[asyncio.Task[None]] = set()


class RunHooks:
    """One run's hook calls, in the run's order, without ever waiting on them."""

    def __init__(self, hooks: HookSet) -> None:
        self._hooks = hooks
        # Decided once: the executor asks for every event of the run, and builds the event's
        # model only when a hook listens.
        self.listening = bool(hooks)
        self._queue: deque[tuple[Hook, RunEventBase]] = deque()
        self._task: asyncio.Task[None] | None = None

    def notify(self, event: RunEventBase) -> None:
        if not self.listening:
            return
        for hook in self._hooks.for_event(event.event):
            self._queue.append((hook, event))
        if self._queue and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain())
            _draining.add(self._task)
            self._task.add_done_callback(_draining.discard)

    async def _drain(self) -> None:
        try:
            while self._queue:
                hook, event = self._queue.popleft()
                await self._call(hook, event)
        finally:
            self._task = None

    async def _call(self, hook: Hook, event: RunEventBase) -> None:
        name = _HOOK_FOR[event.event]
        HOOK_CALLS.labels(name).inc()
        try:
            async with asyncio.timeout(self._hooks.timeout_s):
                await hook.function(event)
        except TimeoutError:
            HOOK_FAILURES.labels(name, "timeout").inc()
            log.warning(
                "hook %s.%s took longer than %gs on run %s; abandoned",
                hook.plugin,
                name,
                self._hooks.timeout_s,
                event.workflow_run_id,
            )
        except Exception:
            HOOK_FAILURES.labels(name, "error").inc()
            log.exception("hook %s.%s failed on run %s", hook.plugin, name, event.workflow_run_id)
