"""Conventions every service's Prometheus registry follows: base units, `_total` counters,
`_seconds` durations, and the process, platform and garbage-collector collectors."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

# Seconds, from a fast node to a slow run; cut and closed by `duration_buckets`.
_STEPS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600,
)  # fmt: skip


def duration_buckets(longest_s: float) -> tuple[float, ...]:
    """Histogram buckets up to `longest_s` (a run's timeout), which is the last finite bucket:
    a run that hit its deadline is told apart from one that nearly did."""
    below = tuple(step for step in _STEPS if step < longest_s)
    return (*below, float(longest_s))


def standard_registry() -> CollectorRegistry:
    """A registry of a service's own, with the process, platform and GC collectors."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry
