"""The errors of templates and conditions: what a node shows its user when an expression fails."""

from __future__ import annotations


class ExpressionError(ValueError):
    """A template or condition that cannot compile or evaluate; the message says why."""


class BudgetExceeded(ExpressionError):
    """A render went past one of its limits (time, steps, sizes); the message names the limit."""
