"""The history service's composition root: the event intake, the run index watcher, the store,
the query responders, and health.

Queries are FastStream request/reply handlers. The event intake is a nats-py subscription on the
shared durable push consumer `history` (its deliver group is shared by the replicas), feeding the
writer (`recorder.Recorder`): per message it costs a callback, not a FastStream handler
(ADR 0015).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.asgi.types import Scope
from faststream.nats import NatsBroker, NatsMessage
from faststream.specification import AsyncAPI
from flowstream_shared import nats_connection, subjects
from flowstream_shared.history import HistoryOp
from flowstream_shared.topology import await_topology
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from flowstream_history.consistency import AckFloor, ReadBarrier, Recorded
from flowstream_history.dead_letters import DeadLetters
from flowstream_history.documented import described_broker
from flowstream_history.owners import OwnerLookup
from flowstream_history.queries import Queries
from flowstream_history.recorder import Recorder
from flowstream_history.run_index import RunIndexWatcher
from flowstream_history.settings import HistorySettings
from flowstream_history.store import ExecutionStore
from flowstream_history.store.mongo import MongoStore
from flowstream_history.store.sqlite import SqliteStore
from flowstream_history.telemetry import HistoryMetrics, MeasuredStore, RunTraces

log = logging.getLogger("flowstream.history")

# Queries of one kind answered at once: a read waiting for the writer (bounded by
# FLOWSTREAM_HISTORY_READ_WAIT_S) must not hold up the others.
QUERY_WORKERS = 64
# Messages nats-py may hold for the intake callback: more than `max_ack_pending` lets through.
INTAKE_PENDING_MSGS = 1 << 20
INTAKE_PENDING_BYTES = 1 << 30


def make_store(settings: HistorySettings) -> ExecutionStore:
    if settings.mongodb_uri is not None and settings.mongodb_uri.get_secret_value():
        return MongoStore(settings.mongodb_uri.get_secret_value())
    return SqliteStore(settings.data_dir / "history.sqlite3", settings.history_sqlite_readers)


@dataclass
class Running:
    """What start-up builds."""

    queries: Queries
    recorder: Recorder
    watcher: RunIndexWatcher
    intake: JetStreamContext.PushSubscription


def intake_config(settings: HistorySettings) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=subjects.HISTORY_CONSUMER,
        deliver_group=subjects.HISTORY_CONSUMER,  # replicas share the consumer
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=settings.history_ack_wait_s,
        # What may be delivered but not yet written: bounds memory when the store is down.
        max_ack_pending=settings.history_max_in_flight,
        filter_subject=subjects.ALL_EVENTS,
    )


def create_app(settings: HistorySettings | None = None) -> AsgiFastStream:
    settings = settings or HistorySettings()
    parts: dict[str, Running] = {}

    async def reconnected() -> None:
        running = parts.get("running")
        if running is not None:
            try:
                await running.watcher.resume()
            except Exception as exc:  # NATS away again: the next reconnect tries again
                log.warning("run index watcher not resumed: %s", exc)

    broker = nats_connection.broker(
        settings,
        "history",
        log_level=logging.DEBUG,
        logger=logging.getLogger("faststream.nats"),  # into the process's one log format
        reconnected_cb=reconnected,
    )
    metrics = HistoryMetrics()
    traces = RunTraces()
    store = make_store(settings)

    for op in HistoryOp:
        _register_query(broker, op, parts)

    async def start_up() -> None:
        await nats_connection.until_connected(broker.connect, "history")
        nc = broker.connection
        js = nc.jetstream()
        await await_topology(js, settings)
        await store.open()
        recorded = Recorded()
        recorder = Recorder(
            MeasuredStore(store, metrics, traces),
            OwnerLookup(store, await js.key_value(subjects.RUNS_BUCKET)),
            DeadLetters(js, nc.max_payload),
            settings,
            metrics,
            recorded,
            traces,
        )
        recorder.start()
        recorded.runs_seq = await store.runs_seq()
        watcher = RunIndexWatcher(js, recorder)
        await watcher.start(recorded.runs_seq)
        await _replace_pull_consumer(js)

        async def on_event(message: Msg) -> None:
            recorder.deliver(message)

        intake = await js.subscribe(
            subjects.ALL_EVENTS,
            queue=subjects.HISTORY_CONSUMER,
            stream=subjects.EVENTS_STREAM,
            cb=on_event,
            manual_ack=True,
            config=intake_config(settings),
            flow_control=True,
            idle_heartbeat=5.0,
            pending_msgs_limit=INTAKE_PENDING_MSGS,
            pending_bytes_limit=INTAKE_PENDING_BYTES,
        )
        barrier = ReadBarrier(store, AckFloor(js), recorded, settings.history_read_wait_s)
        queries = Queries(
            store,
            settings.history_stats_window,
            barrier,
            metrics,
            reply_max_bytes=settings.history_reply_max_bytes,
            list_value_max_bytes=settings.history_list_value_max_bytes,
        )
        parts["running"] = Running(queries, recorder, watcher, intake)

    async def ready() -> None:
        log.info("history ready (%s store)", type(store).__name__)

    async def shut_down() -> None:
        # Before the connection closes: stop deliveries, then hand back what is not recorded.
        running = parts.get("running")
        if running is not None:
            try:
                await running.intake.unsubscribe()
            except Exception as exc:
                log.debug("stopping the intake: %s", exc)
            await running.watcher.stop()
            await running.recorder.stop()

    async def close_store() -> None:
        await store.close()

    @get(include_in_schema=False)
    async def healthz(scope: Scope) -> AsgiResponse:
        return _json({"status": "ok"}, 200)

    @get(include_in_schema=False)
    async def metrics_route(scope: Scope) -> AsgiResponse:
        await metrics.refresh_lag(broker.connection.jetstream())
        body = generate_latest(metrics.registry)
        return AsgiResponse(body, 200, headers={"content-type": CONTENT_TYPE_LATEST})

    @get(include_in_schema=False)
    async def readyz(scope: Scope) -> AsgiResponse:
        problems = await _readiness(broker, parts.get("running"), settings)
        if problems:
            return _json({"status": "unavailable", "problems": problems}, 503)
        return AsgiResponse(b"", 204)  # as FastStream's own readiness probe answers

    return AsgiFastStream(
        broker,
        asgi_routes=[
            ("/healthz", healthz),
            ("/readyz", readyz),
            ("/metrics", metrics_route),
        ],
        on_startup=[start_up],
        after_startup=[ready],
        on_shutdown=[shut_down],
        after_shutdown=[close_store],
        specification=AsyncAPI(
            broker,
            described_broker(settings),
            title="flowstream history",
            version="0.1.0",
            description="Projects run events into the execution store and answers queries.",
        ),
    )


def _json(body: dict[str, Any], status: int) -> AsgiResponse:
    return AsgiResponse(
        json.dumps(body).encode(), status, headers={"content-type": "application/json"}
    )


async def _readiness(
    broker: NatsBroker, running: Running | None, settings: HistorySettings
) -> list[str]:
    """What keeps history from being ready: NATS unreachable, the writer gone, or events held
    without a successful write for longer than `FLOWSTREAM_HISTORY_STALL_S`."""
    if running is None:
        return ["starting"]
    problems = []
    if not await broker.ping(timeout=2.0):
        problems.append("NATS is not reachable")
    if not running.recorder.running:
        problems.append("the writer has stopped")
    else:
        stalled = running.recorder.stalled_for()
        if stalled > settings.history_stall_s:
            problems.append(f"events held {stalled:.0f}s without a successful write")
    return problems


async def _replace_pull_consumer(js: JetStreamContext) -> None:
    """Earlier versions consumed with a pull consumer; the push consumer needs its own.

    Recreating it replays the event log into the store, which idempotent writes make harmless.
    """
    try:
        info = await js.consumer_info(subjects.EVENTS_STREAM, subjects.HISTORY_CONSUMER)
    except Exception:  # absent: the intake creates it
        return
    if info.config.deliver_subject is None:
        await js.delete_consumer(subjects.EVENTS_STREAM, subjects.HISTORY_CONSUMER)


def _register_query(broker: NatsBroker, op: HistoryOp, parts: dict[str, Running]) -> None:
    @broker.subscriber(
        subjects.history_subject(op.value),
        queue=subjects.HISTORY_CONSUMER,
        max_workers=QUERY_WORKERS,
        title=f"history query: {op.value}",
        description="Request/reply; every query carries the caller's user id.",
    )
    async def answer(message: NatsMessage) -> bytes:
        # FastStream sends what the handler returns to the request's reply subject: exactly
        # one response, which is all this identity may publish there.
        reply: bytes = await parts["running"].queries.answer(op, message.body)
        return reply
