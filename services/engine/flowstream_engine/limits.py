"""The engine's size limits and template budgets, read once from its settings.

`configure_limits` (called by the engine at start-up) and `run_limits()` give what the executor
and the renderer use unless a test hands them its own. Configuring also makes the template limits
the process defaults, so the templates rendered inline are held to the same sizes as the rest, with
a CPU budget of their own (`INLINE_CPU_S`).
"""

from __future__ import annotations

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


# A heavy template rendered synchronously in the engine process holds its event loop: a plugin
# node's own render, or a CONDITIONAL connection's condition (the scheduler decides edges
# synchronously). Those get this much CPU; the render processes get the full budget.
INLINE_CPU_S = 0.05

_configured: RunLimits | None = None


def configure_limits(settings: EngineSettings) -> RunLimits:
    """The engine's composition root sets its limits once, from the settings it runs with."""
    global _configured
    _configured = RunLimits.from_settings(settings)
    inline = min(_configured.template.cpu_seconds, INLINE_CPU_S)
    set_default_limits(_configured.template.with_changes(cpu_seconds=inline))
    return _configured


def run_limits() -> RunLimits:
    """The configured limits; without a composition root (a test), the environment's."""
    return _configured or configure_limits(EngineSettings())
