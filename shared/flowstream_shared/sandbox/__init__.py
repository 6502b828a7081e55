"""The bounded Jinja2 sandbox templates and conditions run in (see `docs/workflows.md`)."""

from flowstream_shared.sandbox.budget import RenderBudget, budget_scope
from flowstream_shared.sandbox.errors import BudgetExceeded, ExpressionError
from flowstream_shared.sandbox.limits import TemplateLimits, default_limits, set_default_limits

__all__ = [
    "BudgetExceeded",
    "ExpressionError",
    "RenderBudget",
    "TemplateLimits",
    "budget_scope",
    "default_limits",
    "set_default_limits",
]
