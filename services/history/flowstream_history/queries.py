"""Answers the gateway's `flowstream.history.<op>` requests, always scoped to the caller.

A query that names what its caller has seen waits (bounded) until that is recorded
(`consistency.py`), so a client that has seen a run finish never reads it running.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flowstream_shared.history import (
    ActiveNode,
    ActiveQuery,
    ActiveRun,
    HistoryError,
    HistoryOp,
    HistoryReply,
    ListQuery,
    MetricsQuery,
    RunDetail,
    RunQuery,
    SeenPositions,
    StatsQuery,
    Summary,
    SummaryQuery,
)
from pydantic import ValidationError

from flowstream_history import replies
from flowstream_history.consistency import ReadBarrier
from flowstream_history.custom_metrics import aggregate_custom_metrics
from flowstream_history.stats import workflow_stats
from flowstream_history.store import ExecutionStore, StoreUnavailable
from flowstream_history.telemetry import HistoryMetrics

log = logging.getLogger(__name__)


def _error(code: str, message: str, status: int) -> bytes:
    return (
        HistoryReply(error=HistoryError(code=code, message=message, status=status))
        .model_dump_json()
        .encode()
    )


def _ok(result: Any, behind: bool = False) -> bytes:
    return HistoryReply(result=result, behind=behind).model_dump_json().encode()


class Queries:
    def __init__(
        self,
        store: ExecutionStore,
        stats_window: int,
        barrier: ReadBarrier | None = None,
        metrics: HistoryMetrics | None = None,
        reply_max_bytes: int = 768 << 10,
        list_value_max_bytes: int = 4096,
    ) -> None:
        self._store = store
        self._stats_window = stats_window
        self._barrier = barrier
        self._metrics = metrics
        # Every reply is one NATS message: it must fit under the server's max_payload.
        self._budget = reply_max_bytes
        self._list_value_bytes = list_value_max_bytes

    async def answer(self, op: HistoryOp, body: bytes) -> bytes:
        try:
            return await self._answer(op, body)
        except ValidationError as exc:
            return _error("invalid_param", str(exc.errors()[0].get("msg", exc)), 400)
        except StoreUnavailable as exc:
            return _error("service_unavailable", f"execution store unavailable: {exc}", 503)
        except Exception as exc:  # never leave the gateway waiting for an answer that won't come
            log.exception("answering a %s query failed", op.value)
            return _error("service_unavailable", f"history could not answer: {exc}", 503)

    async def _caught_up(self, query: RunQuery | SeenPositions) -> bool:
        """Wait (bounded) until what the caller has seen is recorded; False when that could not
        be confirmed (past the bound, or the store or the consumer's state not answering)."""
        if self._barrier is None:
            return True
        try:
            if isinstance(query, RunQuery):
                if query.applied_seq is None:
                    return True
                done = await self._barrier.run(
                    query.user_id, query.run_id, query.applied_seq, query.events_seq
                )
            elif query.events_seq is None and query.runs_seq is None:
                return True
            else:
                done = await self._barrier.positions(query.events_seq, query.runs_seq)
        except Exception as exc:
            log.warning("could not tell whether a read is up to date: %s", exc)
            done = False
        if not done and self._metrics is not None:
            self._metrics.read_waits_expired.inc()
        return done

    async def _answer(self, op: HistoryOp, body: bytes) -> bytes:
        store = self._store
        if op in (HistoryOp.GET, HistoryOp.NODES, HistoryOp.TIMELINE):
            query = RunQuery.model_validate_json(body)
            behind = not await self._caught_up(query)
            run = await store.get_run(query.user_id, query.run_id)
            if run is None:
                return _error("not_found", f"execution {query.run_id} not found", 404)
            if op == HistoryOp.GET:
                detail = RunDetail(run=run, nodes=await store.nodes(run.id))
                return _ok(replies.run_detail(detail, self._budget), behind)
            if op == HistoryOp.NODES:
                return _ok(replies.fitted_nodes(await store.nodes(run.id), self._budget)[0], behind)
            entries = await store.timeline(run.id, query.after_seq, query.limit + 1)
            more = len(entries) > query.limit
            return _ok(replies.timeline_page(entries[: query.limit], self._budget, more), behind)
        if op == HistoryOp.LIST:
            list_query = ListQuery.model_validate_json(body)
            behind = not await self._caught_up(list_query)
            page = await store.list_runs(list_query)
            return _ok(replies.list_page(page, self._list_value_bytes, self._budget), behind)
        if op == HistoryOp.STATS:
            stats_query = StatsQuery.model_validate_json(body)
            behind = not await self._caught_up(stats_query)
            runs = await store.runs_for_stats(
                stats_query.user_id, stats_query.workflow_id, self._stats_window
            )
            nodes = await store.nodes_for_stats(stats_query.workflow_id, [r.id for r in runs])
            return _ok(workflow_stats(stats_query.workflow_id, runs, nodes), behind)
        if op == HistoryOp.METRICS:
            metrics_query = MetricsQuery.model_validate_json(body)
            behind = not await self._caught_up(metrics_query)
            runs = await store.runs_for_stats(
                metrics_query.user_id, metrics_query.workflow_id, self._stats_window
            )
            nodes = await store.nodes_for_stats(metrics_query.workflow_id, [r.id for r in runs])
            return _ok(aggregate_custom_metrics(nodes), behind)
        if op == HistoryOp.ACTIVE:
            active_query = ActiveQuery.model_validate_json(body)
            behind = not await self._caught_up(active_query)
            active = await store.active_runs(active_query.user_id, active_query.limit)
            return _ok(
                [
                    ActiveRun(
                        run=replies.summarized(run, self._list_value_bytes),
                        running_nodes=[
                            ActiveNode(node_id=n.node_id, title=n.title, started_at=n.created_at)
                            for n in nodes
                        ],
                    )
                    for run, nodes in active
                ],
                behind,
            )
        summary_query = SummaryQuery.model_validate_json(body)
        behind = not await self._caught_up(summary_query)
        return _ok(
            Summary(
                active_runs=await store.count_runs(summary_query.user_id, "running", None),
                runs_last_minute=await store.count_runs(
                    summary_query.user_id, None, time.time() - 60
                ),
                pending_runs=await store.count_runs(summary_query.user_id, "pending", None),
            ),
            behind,
        )
