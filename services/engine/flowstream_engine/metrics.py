from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from flowstream_engine.hooks import HOOK_CALLS, HOOK_FAILURES


class EngineMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.runs_started = Counter(
            "flowstream_engine_runs_started", "Runs taken from the queue", registry=self.registry
        )
        self.runs_finished = Counter(
            "flowstream_engine_runs_finished",
            "Runs ended, by final status",
            ["status"],
            registry=self.registry,
        )
        self.active_runs = Gauge(
            "flowstream_engine_active_runs",
            "Runs executing in this process",
            registry=self.registry,
        )
        self.run_seconds = Histogram(
            "flowstream_engine_run_seconds", "Run duration", registry=self.registry
        )
        # Process-wide counters kept by the hook runner (`flowstream_engine.hooks`).
        self.registry.register(HOOK_CALLS)
        self.registry.register(HOOK_FAILURES)
