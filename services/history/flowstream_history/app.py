"""The history service's composition root: the event consumer, the store, the query responders."""

from __future__ import annotations

import logging
import warnings
from typing import Any

from faststream import AckPolicy
from faststream.asgi import AsgiFastStream, AsgiResponse, get, make_ping_asgi
from faststream.asgi.types import Scope
from faststream.nats import AckPolicy as ConsumerAckPolicy
from faststream.nats import ConsumerConfig, DeliverPolicy, JStream, NatsBroker, NatsMessage
from faststream.specification import AsyncAPI
from flowstream_shared import nats_connection, subjects
from flowstream_shared.events import RunEvent
from flowstream_shared.history import HistoryOp
from flowstream_shared.topology import await_topology
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from flowstream_history.owners import OwnerLookup
from flowstream_history.queries import Queries
from flowstream_history.recorder import BatchingRecorder, Recorder
from flowstream_history.settings import HistorySettings
from flowstream_history.store import ExecutionStore
from flowstream_history.store.mongo import MongoStore
from flowstream_history.store.sqlite import SqliteStore
from flowstream_history.telemetry import HistoryMetrics, MeasuredStore, RunTraces

log = logging.getLogger("flowstream.history")


def make_store(settings: HistorySettings) -> ExecutionStore:
    if settings.mongodb_uri is not None and settings.mongodb_uri.get_secret_value():
        return MongoStore(settings.mongodb_uri.get_secret_value())
    return SqliteStore(settings.data_dir / "history.sqlite3")


def create_app(settings: HistorySettings | None = None) -> AsgiFastStream:
    settings = settings or HistorySettings()
    broker = nats_connection.broker(
        settings,
        "history",
        log_level=logging.DEBUG,
        logger=logging.getLogger("faststream.nats"),  # into the process's one log format
    )
    metrics = HistoryMetrics()
    traces = RunTraces()
    store = make_store(settings)
    parts: dict[str, Any] = {}

    # FastStream warns about every durable push consumer; this one has a deliver group (`queue`),
    # so history replicas do share it (ADR 10).
    warnings.filterwarnings(
        "ignore",
        message="The JetStream Push consumer with the `durable` option",
        category=RuntimeWarning,
    )

    @broker.subscriber(
        subjects.ALL_EVENTS,
        stream=JStream(subjects.EVENTS_STREAM, declare=False),
        durable=subjects.HISTORY_CONSUMER,
        queue=subjects.HISTORY_CONSUMER,  # replicas share the consumer
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.MANUAL,
        config=ConsumerConfig(
            ack_wait=settings.history_ack_wait_s,
            ack_policy=ConsumerAckPolicy.EXPLICIT,
            # What may be delivered but not yet written: bounds memory when the store is down.
            max_ack_pending=settings.history_max_in_flight,
            flow_control=True,
            idle_heartbeat=5.0,
        ),
        title="run events",
        description="Every run event, projected into the execution store in batches.",
    )
    async def on_event(event: RunEvent, message: NatsMessage) -> None:
        raw = message.raw_message
        address = subjects.parse_event_subject(raw.subject)
        workflow_id = address.run.workflow_id if address else ""
        traces.saw(event.workflow_run_id, message.headers)
        parts["writer"].add(workflow_id, event, raw)

    for op in HistoryOp:
        _register_query(broker, op, parts)

    async def start_up() -> None:
        await nats_connection.until_connected(broker.connect, "history")
        js = broker.connection.jetstream()
        await await_topology(js, settings)
        await store.open()
        parts["queries"] = Queries(
            store,
            settings.history_stats_window,
            settings.history_reply_max_bytes,
            settings.history_list_value_max_bytes,
        )
        await _replace_pull_consumer(js)
        recorder = Recorder(
            MeasuredStore(store, metrics, traces),
            OwnerLookup(await js.key_value(subjects.RUNS_BUCKET)),
            settings.history_retry_max_s,
            on_recorded=metrics.recorded,
        )
        parts["writer"] = BatchingRecorder(recorder, settings.history_batch_size)
        parts["writer"].start()

    async def ready() -> None:
        # After the broker started its subscribers: the consumer exists from here on.
        log.info("history ready (%s store)", type(store).__name__)

    async def shut_down() -> None:
        if "writer" in parts:
            await parts["writer"].stop()
        await store.close()

    @get(include_in_schema=False)
    async def healthz(scope: Scope) -> AsgiResponse:
        return AsgiResponse(b'{"status":"ok"}', 200, headers={"content-type": "application/json"})

    @get(include_in_schema=False)
    async def metrics_route(scope: Scope) -> AsgiResponse:
        await metrics.refresh_lag(broker.connection.jetstream())
        body = generate_latest(metrics.registry)
        return AsgiResponse(body, 200, headers={"content-type": CONTENT_TYPE_LATEST})

    return AsgiFastStream(
        broker,
        asgi_routes=[
            ("/healthz", healthz),
            ("/readyz", make_ping_asgi(broker, timeout=2.0, include_in_schema=False)),
            ("/metrics", metrics_route),
        ],
        on_startup=[start_up],
        after_startup=[ready],
        after_shutdown=[shut_down],
        specification=AsyncAPI(
            title="flowstream history",
            version="0.1.0",
            description="Projects run events into the execution store and answers queries.",
        ),
    )


async def _replace_pull_consumer(js: Any) -> None:
    """Earlier versions consumed with a pull consumer; the push consumer needs its own.

    Recreating it replays the event log into the store, which idempotent writes make harmless.
    """
    try:
        info = await js.consumer_info(subjects.EVENTS_STREAM, subjects.HISTORY_CONSUMER)
    except Exception:  # absent: the subscriber creates it
        return
    if info.config.deliver_subject is None:
        await js.delete_consumer(subjects.EVENTS_STREAM, subjects.HISTORY_CONSUMER)


def _register_query(broker: NatsBroker, op: HistoryOp, parts: dict[str, Any]) -> None:
    @broker.subscriber(
        subjects.history_subject(op.value),
        queue=subjects.HISTORY_CONSUMER,
        title=f"history query: {op.value}",
        description="Request/reply; every query carries the caller's user id.",
    )
    async def answer(message: NatsMessage) -> bytes:
        # FastStream sends what the handler returns to the request's reply subject: exactly
        # one response, which is all this identity may publish there.
        reply: bytes = await parts["queries"].answer(op, message.body)
        return reply
