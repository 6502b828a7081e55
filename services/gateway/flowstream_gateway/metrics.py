"""The gateway's Prometheus series, and the middleware that counts every HTTP request by its
route template (`/api/workflow/{workflow_id}/execute`, never the raw path: ids would make a
series per run)."""

from __future__ import annotations

import time

from flowstream_shared.telemetry.metrics import standard_registry
from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED = "unmatched"  # no route: one series for every unknown path
# Time to a response's headers: milliseconds for most routes, a whole run for `blocking` mode.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = standard_registry()
        self.runs_submitted = Counter(
            "flowstream_gateway_runs_submitted",
            "Runs queued, by API and response mode",
            ["api", "mode"],
            registry=self.registry,
        )
        self.open_streams = Gauge(
            "flowstream_gateway_open_streams",
            "Runs this replica is following (open SSE streams, blocking requests, WebSockets)",
            registry=self.registry,
        )
        self.http_requests = Counter(
            "flowstream_gateway_http_requests",
            "HTTP requests answered, by route template, method and status code",
            ["route", "method", "code"],
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "flowstream_gateway_http_request_duration_seconds",
            "From a request's arrival to its response's headers (a stream's first byte), by "
            "route template and method",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )


class HttpMetrics:
    """Outermost middleware: it also sees the answers other middleware gives (413, CORS)."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        code = 500  # what the client sees if the app raises before answering
        waited: float | None = None

        async def measured_send(message: Message) -> None:
            nonlocal code, waited
            if message["type"] == "http.response.start":
                code = message["status"]
                waited = time.perf_counter() - started
            await send(message)

        try:
            await self.app(scope, receive, measured_send)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            method = scope["method"]
            self.metrics.http_requests.labels(route, method, str(code)).inc()
            elapsed = waited if waited is not None else time.perf_counter() - started
            self.metrics.http_duration.labels(route, method).observe(elapsed)
