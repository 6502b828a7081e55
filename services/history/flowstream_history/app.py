"""The history service's composition root.

It owns the `history` durable consumer on the event log. Projection into the execution store is
built on this consumer; for now each event is read, logged and acknowledged, so the consumer's
position is real and `/readyz` on the gateway can see it.
"""

from __future__ import annotations

import logging
from typing import Annotated

from faststream import AckPolicy, Context
from faststream.asgi import AsgiFastStream, AsgiResponse, get, make_ping_asgi
from faststream.asgi.types import Scope
from faststream.nats import AckPolicy as ConsumerAckPolicy
from faststream.nats import ConsumerConfig, DeliverPolicy, JStream, NatsBroker, PullSub
from faststream.nats.message import NatsBatchMessage
from faststream.specification import AsyncAPI
from flowstream_shared import subjects
from flowstream_shared.events import RunEvent
from flowstream_shared.topology import ensure_topology
from prometheus_client import CollectorRegistry, Counter, make_asgi_app

from flowstream_history.settings import HistorySettings

log = logging.getLogger("flowstream.history")

Batch = Annotated[NatsBatchMessage, Context("message")]


def create_app(settings: HistorySettings | None = None) -> AsgiFastStream:
    settings = settings or HistorySettings()
    broker = NatsBroker(
        settings.url, max_reconnect_attempts=-1, reconnect_time_wait=1, log_level=logging.DEBUG
    )
    registry = CollectorRegistry()
    events_seen = Counter(
        "flowstream_history_events", "Events read from the event log", ["event"], registry=registry
    )

    @broker.subscriber(
        subjects.ALL_EVENTS,
        stream=JStream(subjects.EVENTS_STREAM, declare=False),
        durable=subjects.HISTORY_CONSUMER,
        pull_sub=PullSub(batch_size=256, timeout=5.0, batch=True),
        ack_policy=AckPolicy.MANUAL,
        # AckPolicy.ALL: acknowledging a batch's last message acknowledges the whole batch, one
        # message back to the server per batch instead of one per event.
        config=ConsumerConfig(
            ack_wait=30,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=ConsumerAckPolicy.ALL,
            max_ack_pending=-1,
        ),
        title="run events",
        description="Every run event, in stream order, for the execution store.",
    )
    async def on_events(events: list[RunEvent], batch: Batch) -> None:
        for event in events:
            events_seen.labels(event.event.value).inc()
            log.debug("run %s event %d %s", event.workflow_run_id, event.seq, event.event)
        if batch.raw_message:
            await batch.raw_message[-1].ack()

    async def start_up() -> None:
        await broker.connect()
        await ensure_topology(broker.connection.jetstream(), settings)

    @get(include_in_schema=False)
    async def healthz(scope: Scope) -> AsgiResponse:
        return AsgiResponse(b'{"status":"ok"}', 200, headers={"content-type": "application/json"})

    return AsgiFastStream(
        broker,
        asgi_routes=[
            ("/healthz", healthz),
            ("/readyz", make_ping_asgi(broker, timeout=2.0, include_in_schema=False)),
            ("/metrics", make_asgi_app(registry)),
        ],
        on_startup=[start_up],
        specification=AsyncAPI(
            title="flowstream history",
            version="0.1.0",
            description="Projects run events into the execution store.",
        ),
    )
