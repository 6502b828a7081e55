"""The engine's Prometheus series (docs/operations.md lists them with what to alert on)."""

from __future__ import annotations

from flowstream_shared.telemetry.metrics import duration_buckets, standard_registry
from prometheus_client import Counter, Gauge, Histogram

from flowstream_engine.hooks import HOOK_CALLS, HOOK_FAILURES

# A command waits for an engine from milliseconds (idle) to minutes (a backlog).
QUEUE_WAIT_BUCKETS = duration_buckets(600.0)


class EngineMetrics:
    def __init__(self, run_timeout_s: float = 300.0) -> None:
        self.registry = standard_registry()
        buckets = duration_buckets(run_timeout_s)
        self.runs_started = Counter(
            "flowstream_engine_runs_started",
            "Run attempts taken from the queue (a resumed run counts again)",
            registry=self.registry,
        )
        self.runs_finished = Counter(
            "flowstream_engine_runs_finished",
            "Runs ended by this process, by final status",
            ["status"],
            registry=self.registry,
        )
        self.active_runs = Gauge(
            "flowstream_engine_active_runs",
            "Runs executing in this process",
            registry=self.registry,
        )
        self.run_duration = Histogram(
            "flowstream_engine_run_duration_seconds",
            "From a run's start to its end, by final status (a resumed run's earlier attempts "
            "included)",
            ["status"],
            buckets=buckets,
            registry=self.registry,
        )
        self.node_duration = Histogram(
            "flowstream_engine_node_duration_seconds",
            "One node execution, retries included, by node type and final status",
            ["node_type", "status"],
            buckets=buckets,
            registry=self.registry,
        )
        self.publish_retries = Counter(
            "flowstream_engine_publish_retries",
            "Event windows sent again because the event log did not acknowledge them in time",
            registry=self.registry,
        )
        # Process-wide counters kept by the hook runner (`flowstream_engine.hooks`).
        self.registry.register(HOOK_CALLS)
        self.registry.register(HOOK_FAILURES)
        self.queue_depth = Gauge(
            "flowstream_engine_queue_depth",
            "Commands waiting in a priority band, as last seen by this engine",
            ["band"],
            registry=self.registry,
        )
        self.queue_wait_seconds = Histogram(
            "flowstream_engine_queue_wait_seconds",
            "From a run's acceptance by the gateway to an engine picking it up, by priority band",
            ["band"],
            buckets=QUEUE_WAIT_BUCKETS,
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
