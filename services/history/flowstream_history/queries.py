"""Answers the gateway's `flowstream.history.<op>` requests, always scoped to the caller."""

from __future__ import annotations

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
    StatsQuery,
    Summary,
    SummaryQuery,
)
from pydantic import ValidationError

from flowstream_history import replies
from flowstream_history.custom_metrics import aggregate_custom_metrics
from flowstream_history.stats import workflow_stats
from flowstream_history.store import ExecutionStore, StoreUnavailable


def _error(code: str, message: str, status: int) -> bytes:
    return (
        HistoryReply(error=HistoryError(code=code, message=message, status=status))
        .model_dump_json()
        .encode()
    )


def _ok(result: Any) -> bytes:
    return HistoryReply(result=result).model_dump_json().encode()


class Queries:
    def __init__(
        self,
        store: ExecutionStore,
        stats_window: int,
        reply_max_bytes: int = 768 << 10,
        list_value_max_bytes: int = 4096,
    ) -> None:
        self._store = store
        self._stats_window = stats_window
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

    async def _answer(self, op: HistoryOp, body: bytes) -> bytes:
        store = self._store
        if op in (HistoryOp.GET, HistoryOp.NODES, HistoryOp.TIMELINE):
            query = RunQuery.model_validate_json(body)
            run = await store.get_run(query.user_id, query.run_id)
            if run is None:
                return _error("not_found", f"execution {query.run_id} not found", 404)
            if op == HistoryOp.GET:
                detail = RunDetail(run=run, nodes=await store.nodes(run.id))
                return _ok(replies.run_detail(detail, self._budget))
            if op == HistoryOp.NODES:
                return _ok(replies.fitted_nodes(await store.nodes(run.id), self._budget)[0])
            entries = await store.timeline(run.id, query.after_seq, query.limit + 1)
            more = len(entries) > query.limit
            return _ok(replies.timeline_page(entries[: query.limit], self._budget, more))
        if op == HistoryOp.LIST:
            page = await store.list_runs(ListQuery.model_validate_json(body))
            return _ok(replies.list_page(page, self._list_value_bytes, self._budget))
        if op == HistoryOp.STATS:
            stats_query = StatsQuery.model_validate_json(body)
            runs = await store.runs_for_stats(
                stats_query.user_id, stats_query.workflow_id, self._stats_window
            )
            nodes = await store.nodes_for_stats(stats_query.workflow_id, [r.id for r in runs])
            return _ok(workflow_stats(stats_query.workflow_id, runs, nodes))
        if op == HistoryOp.METRICS:
            metrics_query = MetricsQuery.model_validate_json(body)
            runs = await store.runs_for_stats(
                metrics_query.user_id, metrics_query.workflow_id, self._stats_window
            )
            nodes = await store.nodes_for_stats(metrics_query.workflow_id, [r.id for r in runs])
            return _ok(aggregate_custom_metrics(nodes))
        if op == HistoryOp.ACTIVE:
            active_query = ActiveQuery.model_validate_json(body)
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
                ]
            )
        summary_query = SummaryQuery.model_validate_json(body)
        return _ok(
            Summary(
                active_runs=await store.count_runs(summary_query.user_id, "running", None),
                runs_last_minute=await store.count_runs(
                    summary_query.user_id, None, time.time() - 60
                ),
            )
        )
