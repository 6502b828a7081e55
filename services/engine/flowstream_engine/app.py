"""The engine's composition root: the broker, run consumer, control subscribers, health routes."""

from __future__ import annotations

import logging
from typing import Any

from faststream.asgi import AsgiFastStream, AsgiResponse, get, make_ping_asgi
from faststream.asgi.types import Scope
from faststream.nats import JStream, KvWatch, NatsMessage
from faststream.nats.subscriber.usecases.key_value_subscriber import KeyValueWatchSubscriber
from faststream.specification import AsyncAPI
from flowstream_shared import nats_connection, subjects
from flowstream_shared.commands import ControlCommand, RunCommand
from flowstream_shared.credentials import Opener
from flowstream_shared.events import RunEvent
from flowstream_shared.topology import await_topology, ensure_band_consumers
from prometheus_client import make_asgi_app
from pydantic import ValidationError

from flowstream_engine.concurrency import ConcurrencyGate
from flowstream_engine.control import ControlRegistry, run_id_of_key
from flowstream_engine.credentials import CredentialResolver, configure_credentials
from flowstream_engine.dispatcher import Dispatcher, DispatchSettings
from flowstream_engine.egress import policy_for
from flowstream_engine.http import close_shared_client, configure_egress
from flowstream_engine.lease import Leases, lease_ttl
from flowstream_engine.limits import configure_limits
from flowstream_engine.metrics import EngineMetrics
from flowstream_engine.pickup import Pickup, ResultCache
from flowstream_engine.publisher import AckedPublisher
from flowstream_engine.render.renderer import close_shared_renderer
from flowstream_engine.run_log import LogSettings, window_for
from flowstream_engine.settings import EngineSettings
from flowstream_engine.worker import RunWorker, WorkerSettings

log = logging.getLogger("flowstream.engine")


def create_app(
    settings: EngineSettings | None = None, control: ControlRegistry | None = None
) -> AsgiFastStream:
    """`control` is the process's run registry: `__main__` drains it the moment it is told to
    stop, before the broker's shutdown cancels the runs."""
    settings = settings or EngineSettings()
    kv_watches: list[KeyValueWatchSubscriber] = []

    async def reconnected() -> None:
        # A KV watch is an ordered consumer, which a restarted server does not keep (and
        # nats-py only notices ~20 s later): each is made again, replaying the bucket's values
        # (applying a flag or a slot again changes nothing).
        for watch in kv_watches:
            try:
                await watch.stop()
                await watch.start()
            except Exception as exc:  # NATS away again: the next reconnect tries again
                log.warning("KV watch not made again: %s", exc)

    # Per-message logs at DEBUG: at thousands of runs per second INFO lines would dominate.
    broker = nats_connection.broker(
        settings,
        "engine",
        log_level=logging.DEBUG,
        logger=logging.getLogger("faststream.nats"),  # into the process's one log format
        # Stopping hands every run back at once (its handler naks when cancelled) so another
        # engine resumes it now, instead of finishing runs that may last minutes.
        graceful_timeout=None,
        reconnected_cb=reconnected,
    )
    control = control or ControlRegistry()
    metrics = EngineMetrics(settings.run_timeout)
    publisher: list[AckedPublisher] = []
    dispatcher: list[Dispatcher] = []
    gate: list[ConcurrencyGate] = []

    @broker.subscriber(subjects.ALL_CONTROL, title="run control (fast path)")
    async def on_control(command: ControlCommand, message: NatsMessage) -> None:
        control.receive(subjects.run_id_of_control_subject(message.raw_message.subject), command)

    control_flags = broker.subscriber(
        ">",
        kv_watch=KvWatch(subjects.CONTROL_BUCKET, declare=False),
        title="run control flags (truth)",
    )
    kv_watches.append(control_flags)

    @control_flags
    async def on_control_flag(message: NatsMessage) -> None:
        # A KV watch delivers `KeyValue.Entry` objects, not `Msg`: the key is the run id (a
        # cancel) or `<run_id>.pause` (the latest pause or resume).
        key = getattr(message.raw_message, "key", "")
        _receive(control, run_id_of_key(key), message.body)

    slots = broker.subscriber(
        ">",
        kv_watch=KvWatch(subjects.SLOTS_BUCKET, declare=False),
        title="concurrency-limit slots",
    )
    kv_watches.append(slots)

    @slots
    async def on_slots(message: NatsMessage) -> None:
        # Another engine took or gave back a slot: wake this engine's runs waiting for it.
        entry = message.raw_message
        if gate:
            gate[0].observe(
                getattr(entry, "key", ""), getattr(entry, "revision", 0) or 0, message.body
            )

    # Run commands are taken by the dispatcher (one pull consumer per priority band, highest
    # band first); this declaration documents them.
    broker.publisher(
        f"{subjects.SUBMIT_PREFIX}.{{band}}.{{owner}}.{{run_id}}",
        stream=JStream(subjects.RUNS_STREAM, declare=False),
        title="run commands (consumed, by priority band)",
        description=(
            "Runs to execute, one subject per run: `flowstream.runs.submit.<band>.<owner>."
            "<run_id>`, band = priority 0-9. Engines share one durable pull consumer per band "
            "(`engine-p<band>`) and take the highest non-empty band first; a band passed over "
            "`FLOWSTREAM_ENGINE_STARVATION_LIMIT` times in a row is served next. A payload-less "
            "core message on `flowstream.runs.ready.<band>` wakes idle engines."
        ),
        schema=RunCommand,
    )

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
        events = await js.stream_info(subjects.EVENTS_STREAM)
        await configure_egress(policy_for(settings))
        configure_limits(settings)  # node output size and template budgets
        await _configure_credentials(js, settings)
        await ensure_band_consumers(
            js, ack_wait=settings.engine_ack_wait_s, max_deliver=settings.engine_max_deliver
        )
        publisher.append(AckedPublisher(nc))
        await publisher[0].start()
        leases = Leases(
            publisher[0], await js.key_value(subjects.LEASES_BUCKET), lease_ttl(settings)
        )
        results = ResultCache(await js.key_value(subjects.RESULTS_BUCKET))
        worker = RunWorker(
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
                    window=window_for(events.config.num_replicas or 1),
                ),
            ),
            before_success=results.store,
        )
        gate.append(
            ConcurrencyGate(
                await js.key_value(subjects.SLOTS_BUCKET),
                settings,
                control,
                metrics,
                hold_s=settings.engine_ack_wait_s,
                heartbeat_s=settings.engine_ack_wait_s / 3,
            )
        )
        pickup = Pickup(worker, gate[0], await js.key_value(subjects.RATES_BUCKET))
        dispatcher.append(
            Dispatcher(
                nc,
                pickup.handle,
                metrics,
                DispatchSettings(
                    concurrency=settings.engine_concurrency,
                    starvation_limit=settings.engine_starvation_limit,
                    idle_recheck_s=settings.engine_idle_recheck_s,
                ),
            )
        )
        await dispatcher[0].start()
        log.info("engine ready: %d runs at once, priority bands 0-9", settings.engine_concurrency)

    async def stop_dispatching() -> None:
        # Every run handed back at once, before the connection closes, so another engine
        # resumes it now instead of after its acknowledgement deadline.
        if dispatcher:
            await dispatcher[0].stop()

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
        on_shutdown=[stop_dispatching],
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
