"""The budget of one render: steps, call depth and CPU time, checked while the template runs.

Compiled templates call :func:`current` from the guarded operations, from every loop iteration
(their iterables are wrapped by :func:`counted`) and from every call. A render without a budget of
its own (plain references, rendered inline) is checked against the process defaults and has no
deadline: such templates have no loops or calls to spend time in.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar

from flowstream_shared.sandbox.errors import BudgetExceeded
from flowstream_shared.sandbox.limits import TemplateLimits, default_limits

__all__ = ["RenderBudget", "active", "budget_scope", "counted", "current"]

# Reading the CPU clock is a system call: look at it every this many steps.
_CLOCK_EVERY = 64


class RenderBudget:
    __slots__ = ("_deadline", "depth", "limits", "steps")

    def __init__(self, limits: TemplateLimits, timed: bool = True) -> None:
        self.limits = limits
        self.steps = 0
        self.depth = 0
        self._deadline = time.thread_time() + limits.cpu_seconds if timed else None

    def step(self) -> None:
        self.steps += 1
        if self.steps > self.limits.max_steps:
            raise BudgetExceeded(
                f"template exceeded {self.limits.max_steps:,} steps (loop iterations and calls)"
            )
        if self.steps % _CLOCK_EVERY == 0:
            self.check_time()

    def check_time(self) -> None:
        if self._deadline is not None and time.thread_time() > self._deadline:
            raise BudgetExceeded(
                f"template exceeded its CPU budget of {self.limits.cpu_seconds:g}s"
            )

    def enter(self) -> None:
        self.depth += 1
        if self.depth > self.limits.max_depth:
            raise BudgetExceeded(
                f"template recursion deeper than {self.limits.max_depth} (macros, recursive loops)"
            )

    def leave(self) -> None:
        self.depth -= 1


_current: ContextVar[RenderBudget | None] = ContextVar("flowstream_render_budget", default=None)


def current() -> RenderBudget:
    """The running render's budget, or an untimed one with the process defaults."""
    budget = _current.get()
    return budget if budget is not None else RenderBudget(default_limits(), timed=False)


def active() -> RenderBudget | None:
    return _current.get()


@contextlib.contextmanager
def budget_scope(limits: TemplateLimits) -> Iterator[RenderBudget]:
    """Renders inside the block share one timed budget."""
    budget = RenderBudget(limits)
    token = _current.set(budget)
    try:
        yield budget
    finally:
        # A streaming render abandoned half-way is closed wherever it is collected.
        with contextlib.suppress(ValueError):
            _current.reset(token)


def counted(iterable: Iterable[object]) -> Iterator[object]:
    """`iterable`, one budget step per item: wraps every `{% for %}`."""
    budget = current()
    for item in iterable:
        budget.step()
        yield item
