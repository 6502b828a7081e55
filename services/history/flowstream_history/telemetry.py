"""What the history service reports: how far behind the event log it is, how long its writes
take and how large its batches are, what it dead-lettered and why, and how often a read's wait
ran out (Prometheus); and a span per run per batch write (tracing on).

A batch holds events of many runs, each run a trace of its own: every run in a written batch
gets a `history write` span under the trace its events carry, timed like the whole write.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping

from flowstream_shared import subjects
from flowstream_shared.history import (
    ListQuery,
    NodeExecutionRecord,
    RunPage,
    RunRecord,
    TimelineEntry,
)
from flowstream_shared.telemetry.metrics import standard_registry
from flowstream_shared.telemetry.tracing import extract, tracing_enabled
from nats.js import JetStreamContext
from opentelemetry import trace
from prometheus_client import Counter, Gauge, Histogram

from flowstream_history.intake import Reason
from flowstream_history.projection import Owner, ProjectionBatch
from flowstream_history.store import ExecutionStore

WRITE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000)


class HistoryMetrics:
    def __init__(self) -> None:
        self.registry = standard_registry()
        self.events_recorded = Counter(
            "flowstream_history_events_recorded",
            "Events written to the execution store",
            registry=self.registry,
        )
        self.write_seconds = Histogram(
            "flowstream_history_write_seconds",
            "One batch write to the execution store (each attempt, failed ones included)",
            buckets=WRITE_BUCKETS,
            registry=self.registry,
        )
        self.write_failures = Counter(
            "flowstream_history_write_failures",
            "Batch writes that failed and will be retried (the store is unavailable)",
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "flowstream_history_batch_size",
            "Events per written batch",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.consumer_lag = Gauge(
            "flowstream_history_consumer_lag",
            "Events in the event log not yet recorded: pending for the `history` consumer "
            "plus delivered and not yet acknowledged (read at each scrape)",
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
        self.read_waits_expired = Counter(
            "flowstream_history_read_waits_expired",
            "Reads answered at the end of their wait, before what they named was recorded",
            registry=self.registry,
        )

    def recorded(self, events: int) -> None:
        self.events_recorded.inc(events)
        self.batch_size.observe(events)

    async def refresh_lag(self, js: JetStreamContext) -> None:
        """One consumer-info request per scrape; a failed one leaves the last value."""
        with contextlib.suppress(Exception):
            info = await js.consumer_info(
                subjects.EVENTS_STREAM, subjects.HISTORY_CONSUMER, timeout=2
            )
            self.consumer_lag.set((info.num_pending or 0) + (info.num_ack_pending or 0))


class RunTraces:
    """The trace each run's latest delivered event carries, until a write covers the run."""

    def __init__(self) -> None:
        self._carried: dict[str, Mapping[str, str]] = {}

    def saw(self, run_id: str, headers: Mapping[str, str] | None) -> None:
        if tracing_enabled() and headers and "traceparent" in headers:
            self._carried[run_id] = headers

    def written(self, run_ids: list[str], started_ns: int) -> None:
        if not self._carried:
            return
        tracer = trace.get_tracer(__name__)
        ended_ns = time.time_ns()
        for run_id in run_ids:
            headers = self._carried.pop(run_id, None)
            if headers is None:
                continue
            tracer.start_span(
                "history write",
                context=extract(headers),
                kind=trace.SpanKind.CONSUMER,
                attributes={"flowstream.run_id": run_id, "flowstream.batch_runs": len(run_ids)},
                start_time=started_ns,
            ).end(end_time=ended_ns)


class MeasuredStore:
    """The execution store, its batch writes timed and traced."""

    def __init__(self, store: ExecutionStore, metrics: HistoryMetrics, traces: RunTraces) -> None:
        self._store = store
        self._metrics = metrics
        self._traces = traces

    async def apply(self, batch: ProjectionBatch) -> None:
        started, started_ns = time.perf_counter(), time.time_ns()
        try:
            await self._store.apply(batch)
        except Exception:
            self._metrics.write_failures.inc()
            raise
        finally:
            self._metrics.write_seconds.observe(time.perf_counter() - started)
        self._traces.written(batch.run_ids, started_ns)

    async def open(self) -> None:
        await self._store.open()

    async def close(self) -> None:
        await self._store.close()

    async def owners(self, run_ids: list[str]) -> dict[str, Owner]:
        return await self._store.owners(run_ids)

    async def runs_seq(self) -> int:
        return await self._store.runs_seq()

    async def applied(self, user_id: str, run_id: str, seq: int) -> bool:
        return await self._store.applied(user_id, run_id, seq)

    async def get_run(self, user_id: str, run_id: str) -> RunRecord | None:
        return await self._store.get_run(user_id, run_id)

    async def list_runs(self, query: ListQuery) -> RunPage:
        return await self._store.list_runs(query)

    async def nodes(self, run_id: str) -> list[NodeExecutionRecord]:
        return await self._store.nodes(run_id)

    async def timeline(
        self, run_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[TimelineEntry]:
        return await self._store.timeline(run_id, after_seq, limit)

    async def runs_for_stats(self, user_id: str, workflow_id: str, limit: int) -> list[RunRecord]:
        return await self._store.runs_for_stats(user_id, workflow_id, limit)

    async def nodes_for_stats(
        self, workflow_id: str, run_ids: list[str]
    ) -> list[NodeExecutionRecord]:
        return await self._store.nodes_for_stats(workflow_id, run_ids)

    async def active_runs(
        self, user_id: str, limit: int
    ) -> list[tuple[RunRecord, list[NodeExecutionRecord]]]:
        return await self._store.active_runs(user_id, limit)

    async def count_runs(
        self, user_id: str, status: str | None, created_after: float | None
    ) -> int:
        return await self._store.count_runs(user_id, status, created_after)
