from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


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
        self.queue_depth = Gauge(
            "flowstream_engine_queue_depth",
            "Commands waiting in a priority band, as last seen by this engine",
            ["band"],
            registry=self.registry,
        )
        self.queue_wait_seconds = Histogram(
            "flowstream_engine_queue_wait_seconds",
            "Time from a run's submission to its pickup, by priority band",
            ["band"],
            buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600),
            registry=self.registry,
        )
        self.waiting_runs = Gauge(
            "flowstream_engine_runs_waiting_for_limit",
            "Picked-up runs waiting for a concurrency-limit slot",
            registry=self.registry,
        )
        self.cached_runs = Counter(
            "flowstream_engine_cached_runs",
            "Runs answered from the result cache",
            registry=self.registry,
        )
