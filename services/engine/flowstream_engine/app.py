"""The engine's composition root: the broker, run consumer, control subscribers, health routes."""

from __future__ import annotations

import logging
from typing import Any

from faststream import AckPolicy
from faststream.asgi import AsgiFastStream, AsgiResponse, get, make_ping_asgi
from faststream.asgi.types import Scope
from faststream.nats import ConsumerConfig, JStream, KvWatch, NatsMessage, PullSub
from faststream.specification import AsyncAPI
from flowstream_shared import nats_connection, subjects
from flowstream_shared.commands import ControlCommand, RunCommand
from flowstream_shared.credentials import Opener
from flowstream_shared.events import RunEvent
from flowstream_shared.telemetry.logs import log_context
from flowstream_shared.telemetry.tracing import continued_from
from flowstream_shared.topology import await_topology, converge_consumer
from prometheus_client import make_asgi_app
from pydantic import ValidationError

from flowstream_engine.control import ControlRegistry, run_id_of_key
from flowstream_engine.credentials import CredentialResolver, configure_credentials
from flowstream_engine.egress import policy_for
from flowstream_engine.http import close_shared_client, configure_egress
from flowstream_engine.lease import Leases
from flowstream_engine.limits import configure_limits
from flowstream_engine.metrics import EngineMetrics
from flowstream_engine.publisher import AckedPublisher
from flowstream_engine.render.renderer import close_shared_renderer
from flowstream_engine.run_log import LogSettings
from flowstream_engine.settings import EngineSettings
from flowstream_engine.worker import RunWorker, WorkerSettings

log = logging.getLogger("flowstream.engine")


def create_app(settings: EngineSettings | None = None) -> AsgiFastStream:
    settings = settings or EngineSettings()
    # Per-message logs at DEBUG: at thousands of runs per second INFO lines would dominate.
    broker = nats_connection.broker(
        settings,
        "engine",
        log_level=logging.DEBUG,
        logger=logging.getLogger("faststream.nats"),  # into the process's one log format
        # Stopping hands every run back at once (its handler naks when cancelled) so another
        # engine resumes it now, instead of finishing runs that may last minutes.
        graceful_timeout=None,
    )
    control = ControlRegistry()
    metrics = EngineMetrics(settings.run_timeout)
    publisher: list[AckedPublisher] = []
    worker: list[RunWorker] = []

    @broker.subscriber(
        subjects.ALL_SUBMIT,
        stream=JStream(subjects.RUNS_STREAM, declare=False),
        durable=subjects.ENGINE_CONSUMER,
        pull_sub=PullSub(batch_size=1, timeout=5.0),
        inbox_prefix=f"{settings.inbox_prefix}.".encode(),  # this identity's replies only
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
        # The gateway's trace continues here; every line about the run names it.
        with (
            log_context(run_id=command.run_id, workflow_id=command.workflow.workflow_id),
            continued_from(message.headers),
        ):
            await worker[0].handle(command, message.raw_message)

    @broker.subscriber(subjects.ALL_CONTROL, title="run control (fast path)")
    async def on_control(command: ControlCommand, message: NatsMessage) -> None:
        control.receive(subjects.run_id_of_control_subject(message.raw_message.subject), command)

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

    # Events are published by each run's RunLog; these declarations document them.
    broker.publisher(
        subjects.RunAddress("{owner}", "{workflow_id}", "{run_id}").ingest_subject("{event}"),
        stream=JStream(subjects.EVENTS_STREAM, declare=False),
        title="run events (as engines publish them)",
        description=(
            "Every event of a run, in `seq` order, with `Nats-Msg-Id: <run_id>:<seq>` and the "
            "attempt's claim as `Nats-Expected-Last-Subject-Sequence` on "
            "`flowstream.claims.<run_id>`. The stream stores each as "
            "`flowstream.events.<owner>.<workflow_id>.<run_id>.<event>` and republishes it "
            "there: subscribing to `flowstream.events.<owner>.>` gives exactly what SSE "
            "clients get."
        ),
        schema=RunEvent,
    )

    async def start_up() -> None:
        await nats_connection.until_connected(broker.connect, "engine")
        nc = broker.connection
        js = nc.jetstream()
        await await_topology(js, settings)
        configure_egress(policy_for(settings))
        configure_limits(settings)  # node output size and template budgets
        await _configure_credentials(js, settings)
        await converge_consumer(
            js,
            subjects.RUNS_STREAM,
            subjects.ENGINE_CONSUMER,
            filter_subject=subjects.ALL_SUBMIT,
            ack_wait=settings.engine_ack_wait_s,
            max_deliver=settings.engine_max_deliver,
        )
        publisher.append(AckedPublisher(nc))
        await publisher[0].start()
        leases = Leases(
            publisher[0], await js.key_value(subjects.LEASES_BUCKET), settings.engine_ack_wait_s
        )
        worker.append(
            RunWorker(
                nc,
                publisher[0],
                leases,
                control,
                metrics,
                WorkerSettings(
                    ack_wait_s=settings.engine_ack_wait_s,
                    max_deliver=settings.engine_max_deliver,
                    max_event_bytes=max(64 << 10, nc.max_payload - (16 << 10)),
                    log=LogSettings(
                        ack_timeout_s=settings.engine_publish_ack_timeout_s,
                        retry_budget_s=settings.engine_publish_retry_s,
                    ),
                ),
            )
        )

    async def shut_down() -> None:
        if publisher:
            await publisher[0].stop()
        await close_shared_client()  # the pool API_CALL and LLM nodes share
        await close_shared_renderer()  # the render processes of heavy templates

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
