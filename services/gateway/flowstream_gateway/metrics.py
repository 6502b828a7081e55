from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.runs_submitted = Counter(
            "flowstream_gateway_runs_submitted",
            "Runs queued, by API and response mode",
            ["api", "mode"],
            registry=self.registry,
        )
        self.open_streams = Gauge(
            "flowstream_gateway_open_streams",
            "Runs this replica is following",
            registry=self.registry,
        )
