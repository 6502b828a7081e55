"""The engine's composition root: the broker, run consumer, control subscribers, health routes."""

from __future__ import annotations

import logging
from typing import Any

from faststream import AckPolicy
from faststream.asgi import AsgiFastStream, AsgiResponse, get, make_ping_asgi
from faststream.asgi.types import Scope
from faststream.nats import ConsumerConfig, JStream, KvWatch, NatsBroker, NatsMessage, PullSub
from faststream.specification import AsyncAPI
from flowstream_shared import subjects
from flowstream_shared.commands import ControlCommand, RunCommand
from flowstream_shared.credentials import Opener
from flowstream_shared.events import RunEvent
from flowstream_shared.topology import ensure_topology
from prometheus_client import make_asgi_app
from pydantic import ValidationError

from flowstream_engine.control import ControlRegistry, run_id_of_key
from flowstream_engine.credentials import CredentialResolver, configure_credentials
from flowstream_engine.egress import policy_for
from flowstream_engine.emitter import EventLogWriter
from flowstream_engine.http import close_shared_client, configure_egress
from flowstream_engine.metrics import EngineMetrics
from flowstream_engine.settings import EngineSettings
from flowstream_engine.worker import RunWorker

log = logging.getLogger("flowstream.engine")


def create_app(settings: EngineSettings | None = None) -> AsgiFastStream:
    settings = settings or EngineSettings()
    # Per-message logs at DEBUG: at thousands of runs per second INFO lines would dominate.
    broker = NatsBroker(
        settings.url, max_reconnect_attempts=-1, reconnect_time_wait=1, log_level=logging.DEBUG
    )
    control = ControlRegistry()
    metrics = EngineMetrics()
    writer: list[EventLogWriter] = []
    worker: list[RunWorker] = []

    @broker.subscriber(
        subjects.SUBMIT_SUBJECT,
        stream=JStream(subjects.RUNS_STREAM, declare=False),
        durable=subjects.ENGINE_CONSUMER,
        pull_sub=PullSub(batch_size=1, timeout=5.0),
        max_workers=settings.engine_concurrency,
        ack_policy=AckPolicy.MANUAL,
        config=ConsumerConfig(
            ack_wait=settings.engine_ack_wait_s,
            max_deliver=settings.engine_max_deliver,
            max_ack_pending=-1,
        ),
        title="run commands",
        description="Runs to execute; engine replicas share one durable pull consumer.",
    )
    async def on_run(command: RunCommand, message: NatsMessage) -> None:
        await worker[0].handle(command, message.raw_message)

    @broker.subscriber(subjects.ALL_CONTROL, title="run control (fast path)")
    async def on_control(command: ControlCommand, message: NatsMessage) -> None:
        control.receive(message.raw_message.subject.rsplit(".", 1)[-1], command)

    @broker.subscriber(
        ">",
        kv_watch=KvWatch(subjects.CONTROL_BUCKET, declare=False),
        title="run control flags (truth)",
    )
    async def on_control_flag(message: NatsMessage) -> None:
        # A KV watch delivers `KeyValue.Entry` objects, not `Msg`: the key is the run id (a
        # cancel) or `<run_id>.pause` (the latest pause or resume).
        key = getattr(message.raw_message, "key", "")
        _receive(control, run_id_of_key(key), message.body)

    # Events are published by the pipelined EventLogWriter; these declarations document them.
    broker.publisher(
        subjects.event_subject("{workflow_id}", "{run_id}", "{event}"),
        stream=JStream(subjects.EVENTS_STREAM, declare=False),
        title="run events",
        description=(
            "Every event of a run, in `seq` order, with `Nats-Msg-Id: <run_id>:<seq>`. "
            "Subscribing to `flowstream.events.>` gives exactly what SSE clients get."
        ),
        schema=RunEvent,
    )

    async def start_up() -> None:
        await broker.connect()
        js = broker.connection.jetstream()
        await ensure_topology(js, settings)
        configure_egress(policy_for(settings))
        await _configure_credentials(js, settings)
        writer.append(EventLogWriter(js))
        writer[0].start()
        worker.append(
            RunWorker(
                js,
                writer[0],
                control,
                metrics,
                ack_wait_s=settings.engine_ack_wait_s,
                max_deliver=settings.engine_max_deliver,
            )
        )

    async def shut_down() -> None:
        if writer:
            await writer[0].stop()
        await close_shared_client()  # the pool API_CALL and LLM nodes share

    @get(include_in_schema=False)
    async def healthz(scope: Scope) -> AsgiResponse:
        return AsgiResponse(b'{"status":"ok"}', 200, headers={"content-type": "application/json"})

    return AsgiFastStream(
        broker,
        asgi_routes=[
            ("/healthz", healthz),
            ("/readyz", make_ping_asgi(broker, timeout=2.0, include_in_schema=False)),
            ("/metrics", make_asgi_app(metrics.registry)),
        ],
        on_startup=[start_up],
        specification=AsyncAPI(
            title="flowstream engine",
            version="0.1.0",
            description="Executes workflow runs: consumes run commands, publishes run events.",
        ),
        after_shutdown=[shut_down],
    )


async def _configure_credentials(js: Any, settings: EngineSettings) -> None:
    key = settings.credentials_private_key
    opener = Opener(key.get_secret_value()) if key is not None else None
    kv = await js.key_value(subjects.CREDENTIALS_BUCKET)
    configure_credentials(CredentialResolver(kv, opener, settings.credentials_cache_s))


def _receive(control: ControlRegistry, run_id: str, body: bytes) -> None:
    if not body:
        return  # a deleted or expired flag
    try:
        control.receive(run_id, ControlCommand.model_validate_json(body))
    except ValidationError:
        log.warning("ignoring a malformed control message for run %s", run_id)
