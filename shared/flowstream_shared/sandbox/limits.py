"""The bounds every render keeps to, whatever a template asks for.

Sizes are counted in characters for strings and in items for lists: the cost of building them.
The process-wide defaults are what renders without a budget of their own (the plain references
rendered inline by the engine) are checked against; the engine sets them from its settings.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["TemplateLimits", "default_limits", "set_default_limits"]


@dataclass(frozen=True)
class TemplateLimits:
    # The longest string (characters) or list (items) one operation may build: repetition,
    # concatenation, `replace`, `join`, padding.
    max_string: int = 1_000_000
    # The largest integer `**` and `*` may build, in bits (2**16384 has 4,933 digits).
    max_integer_bits: int = 16_384
    # Format widths and precisions (`%`, `.format`, `format`), padding widths (`center`,
    # `ljust`, `rjust`, `zfill`, `indent`, `expandtabs`) and counts (`batch`, `slice`).
    max_width: int = 10_000
    # Loop iterations plus calls (macros, methods, recursive loops) in one render.
    max_steps: int = 100_000
    # Nested macro calls and recursive-loop levels.
    max_depth: int = 64
    # The characters one render may output (a TEMPLATE's text, one value of an END).
    max_output: int = 262_144
    # CPU seconds one render may use; checked between steps.
    cpu_seconds: float = 1.0

    def with_changes(self, **changes: float) -> TemplateLimits:
        return replace(self, **changes)  # type: ignore[arg-type]


_default = TemplateLimits()


def default_limits() -> TemplateLimits:
    return _default


def set_default_limits(limits: TemplateLimits) -> None:
    """Called once by a process that renders (the engine and its render processes)."""
    global _default
    _default = limits
