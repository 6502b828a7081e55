"""The engine's size limits and template budgets, read once from its settings.

`run_limits()` is what the executor and the renderer use unless a test hands them its own. The
first call also makes the template limits the process defaults, so the templates rendered inline
(plain references) are held to the same output size as the rest.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from flowstream_shared.sandbox import TemplateLimits, set_default_limits

from flowstream_engine.settings import EngineSettings


@dataclass(frozen=True)
class RunLimits:
    # A node's outputs as JSON: past it the node fails, before its `node_finished` is published.
    node_output_max_bytes: int = 256 << 10
    template: TemplateLimits = field(default_factory=TemplateLimits)
    # Address space of one render process, and how many render at once.
    render_memory_bytes: int = 512 << 20
    render_workers: int = 2

    @classmethod
    def from_settings(cls, settings: EngineSettings) -> RunLimits:
        return cls(
            node_output_max_bytes=settings.node_output_max_bytes,
            template=TemplateLimits(
                max_string=settings.template_max_string,
                max_steps=settings.template_max_steps,
                max_output=settings.node_output_max_bytes,
                cpu_seconds=settings.template_cpu_s,
            ),
            render_memory_bytes=settings.template_memory_mb << 20,
            render_workers=settings.template_workers,
        )


@functools.cache
def run_limits() -> RunLimits:
    limits = RunLimits.from_settings(EngineSettings())
    set_default_limits(limits.template)
    return limits
