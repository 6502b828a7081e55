"""History's Prometheus metrics (`/metrics`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram

from flowstream_history.intake import Reason


@dataclass
class HistoryMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.recorded = Counter(
            "flowstream_history_events_recorded",
            "Events written to the store",
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "flowstream_history_dead_letters",
            "Messages dead-lettered instead of recorded, by reason",
            ["reason"],
            registry=self.registry,
        )
        for reason in Reason:
            self.dead_letters.labels(reason.value)  # every reason shows, at 0 until it happens
        self.owner_waits = Counter(
            "flowstream_history_owner_waits",
            "Deliveries put back because their run's owner was not known yet",
            registry=self.registry,
        )
        self.batch_events = Histogram(
            "flowstream_history_batch_events",
            "Events per written batch",
            buckets=(1, 4, 16, 64, 256, 1024, 4096),
            registry=self.registry,
        )
        self.read_waits = Counter(
            "flowstream_history_read_waits_expired",
            "Reads answered at the end of their wait, before what they named was recorded",
            registry=self.registry,
        )
