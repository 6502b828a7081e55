"""The JetStream streams and KV buckets flowstream needs, declared idempotently by every service.

Every service calls :func:`ensure_topology` at start-up, so any of them can start first.
"""

from __future__ import annotations

import asyncio
import logging

from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DiscardPolicy,
    KeyValueConfig,
    RePublish,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    SubjectTransform,
)
from nats.js.errors import BadRequestError, BucketNotFoundError, NotFoundError

from flowstream_shared import subjects
from flowstream_shared.settings import NatsSettings

log = logging.getLogger(__name__)

# A retried publish inside this window is stored once (Nats-Msg-Id).
DUPLICATE_WINDOW_S = 120.0
# Cancel flags only matter while a run can still be running.
CONTROL_TTL_S = 24 * 3600.0
# DESIGN §3.5: the same Idempotency-Key within a day answers the same run.
IDEMPOTENCY_TTL_S = 24 * 3600.0
DEAD_LETTER_MAX_BYTES = 64 << 20
# Rate-limit windows last at most an hour; a concurrent-run quota entry lives until the run's
# deadline, at most a day.
RATES_TTL_S = 25 * 3600.0
# The longest a result may be cached (WorkflowConfig.cache.ttl).
RESULTS_TTL_S = 7 * 24 * 3600.0


def runs_stream(settings: NatsSettings) -> StreamConfig:
    return StreamConfig(
        name=subjects.RUNS_STREAM,
        subjects=[subjects.ALL_SUBMIT],
        retention=RetentionPolicy.WORK_QUEUE,
        allow_direct=True,  # a waiting command's queue position, by its run id
        storage=StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW_S,
        num_replicas=settings.stream_replicas,
    )


def events_stream(settings: NatsSettings) -> StreamConfig:
    """Engines publish to `flowstream.ingest.…`; the stream stores each event under
    `flowstream.events.…` and republishes what it stored there, with its stream sequence, to
    core subscribers (gateways, direct subscribers): they never see an event the stream refused.
    Claim markers (`flowstream.claims.<run>`) are stored as they are and republished to nobody."""
    return StreamConfig(
        name=subjects.EVENTS_STREAM,
        subjects=[subjects.ALL_INGEST, subjects.ALL_CLAIMS],
        subject_transform=SubjectTransform(src=subjects.ALL_INGEST, dest=subjects.ALL_EVENTS),
        republish=RePublish(src=subjects.ALL_EVENTS, dest=subjects.ALL_EVENTS),
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        storage=StorageType.FILE,
        max_age=settings.events_max_age_s,
        max_bytes=settings.events_max_bytes,
        duplicate_window=DUPLICATE_WINDOW_S,
        num_replicas=settings.stream_replicas,
        allow_direct=True,  # reads of a run's events go to any replica, with no consumer
    )


def dead_letter_stream(settings: NatsSettings) -> StreamConfig:
    """What history could not record, kept for an operator to look at."""
    return StreamConfig(
        name=subjects.DEAD_LETTER_STREAM,
        subjects=[f"{subjects.DEAD_LETTER_PREFIX}.>"],
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        storage=StorageType.FILE,
        max_age=settings.events_max_age_s,
        max_bytes=DEAD_LETTER_MAX_BYTES,
        num_replicas=settings.stream_replicas,
    )


def buckets(settings: NatsSettings) -> list[KeyValueConfig]:
    return [
        KeyValueConfig(
            bucket=subjects.CONTROL_BUCKET,
            ttl=CONTROL_TTL_S,
            history=1,
            replicas=settings.stream_replicas,
        ),
        KeyValueConfig(
            bucket=subjects.WORKFLOWS_BUCKET, history=1, replicas=settings.stream_replicas
        ),
        KeyValueConfig(
            bucket=subjects.API_KEYS_BUCKET, history=1, replicas=settings.stream_replicas
        ),
        KeyValueConfig(bucket=subjects.APIS_BUCKET, history=1, replicas=settings.stream_replicas),
        KeyValueConfig(
            bucket=subjects.CREDENTIALS_BUCKET, history=1, replicas=settings.stream_replicas
        ),
        KeyValueConfig(
            bucket=subjects.RUNS_BUCKET,
            ttl=settings.events_max_age_s,
            history=1,
            replicas=settings.stream_replicas,
        ),
        KeyValueConfig(
            bucket=subjects.LEASES_BUCKET,
            ttl=CONTROL_TTL_S,  # each key expires much sooner: per-message TTLs
            history=1,
            replicas=settings.stream_replicas,
        ),
        KeyValueConfig(
            bucket=subjects.SLOTS_BUCKET,
            ttl=CONTROL_TTL_S,  # entries expire on their own; idle scopes go after a day
            history=1,
            replicas=settings.stream_replicas,
        ),
        KeyValueConfig(
            bucket=subjects.RATES_BUCKET,
            ttl=RATES_TTL_S,
            history=1,
            replicas=settings.stream_replicas,
        ),
        KeyValueConfig(
            bucket=subjects.RESULTS_BUCKET,
            ttl=RESULTS_TTL_S,
            history=1,
            replicas=settings.stream_replicas,
        ),
        KeyValueConfig(
            bucket=subjects.IDEMPOTENCY_BUCKET,
            ttl=IDEMPOTENCY_TTL_S,
            history=1,
            replicas=settings.stream_replicas,
        ),
    ]


async def _ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    try:
        await js.add_stream(config=config)
    except BadRequestError:
        # Exists with another configuration (an operator changed max age, say): converge.
        await js.update_stream(config=config)


async def await_topology(js: JetStreamContext, settings: NatsSettings) -> None:
    """Wait until the streams and buckets exist. Only the gateway may declare them (NATS
    permissions); an engine or history process started first waits for it."""
    names = [
        runs_stream(settings).name,
        events_stream(settings).name,
        dead_letter_stream(settings).name,
        *(f"KV_{bucket.bucket}" for bucket in buckets(settings)),
    ]
    delay = 0.2
    for name in names:
        assert name is not None
        while True:
            try:
                await js.stream_info(name)
                break
            except NotFoundError:
                log.info("waiting for stream %s to be declared (by a gateway)", name)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)


async def ensure_topology(js: JetStreamContext, settings: NatsSettings) -> None:
    await _ensure_stream(js, runs_stream(settings))
    await _ensure_stream(js, events_stream(settings))
    await _ensure_stream(js, dead_letter_stream(settings))
    for bucket in buckets(settings):
        try:
            await js.key_value(bucket.bucket)
        except (BucketNotFoundError, NotFoundError):
            await js.create_key_value(config=bucket)
            continue
        await _converge_bucket(js, bucket)


async def _converge_bucket(js: JetStreamContext, bucket: KeyValueConfig) -> None:
    """`create_key_value` leaves an existing bucket as it was created: bring its stream to the
    configured replicas, TTL and history (an install moving from 1 to 3 replicas, say)."""
    stream = f"KV_{bucket.bucket}"
    config = (await js.stream_info(stream)).config
    wanted = (bucket.replicas, bucket.ttl or 0.0, bucket.history)
    if (config.num_replicas, config.max_age or 0.0, config.max_msgs_per_subject) == wanted:
        return
    log.info(
        "bucket %s: replicas %s, ttl %ss, history %s (was %s, %ss, %s)",
        bucket.bucket,
        *wanted,
        config.num_replicas,
        config.max_age,
        config.max_msgs_per_subject,
    )
    config.num_replicas, config.max_age, config.max_msgs_per_subject = wanted
    await js.update_stream(config=config)


async def converge_consumer(
    js: JetStreamContext,
    stream: str,
    durable: str,
    *,
    filter_subject: str,
    ack_wait: float,
    max_deliver: int,
) -> None:
    """A durable consumer keeps the settings it was created with: bring an existing one to the
    configured filter, acknowledgement deadline and delivery limit (absent, its subscriber
    creates it)."""
    try:
        info = await js.consumer_info(stream, durable)
    except NotFoundError:
        return
    config = info.config
    wanted = (filter_subject, ack_wait, max_deliver)
    if (config.filter_subject, config.ack_wait, config.max_deliver) == wanted:
        return
    config.filter_subject, config.ack_wait, config.max_deliver = wanted
    await js.add_consumer(stream, config=config)


async def ensure_band_consumers(js: JetStreamContext, *, ack_wait: float, max_deliver: int) -> None:
    """One durable pull consumer per priority band (ADR 0035), and the legacy consumer `engine`
    narrowed to commands queued before bands existed. A work-queue stream refuses overlapping
    consumers, so the legacy one is narrowed first."""
    try:
        await js.consumer_info(subjects.RUNS_STREAM, subjects.ENGINE_CONSUMER)
    except NotFoundError:
        await js.add_consumer(
            subjects.RUNS_STREAM,
            config=_pull_consumer(
                subjects.ENGINE_CONSUMER, subjects.LEGACY_SUBMIT, ack_wait, max_deliver
            ),
        )
    await converge_consumer(
        js,
        subjects.RUNS_STREAM,
        subjects.ENGINE_CONSUMER,
        filter_subject=subjects.LEGACY_SUBMIT,
        ack_wait=ack_wait,
        max_deliver=max_deliver,
    )
    for band in range(subjects.PRIORITY_BANDS):
        durable = subjects.band_consumer(band)
        try:
            await js.consumer_info(subjects.RUNS_STREAM, durable)
        except NotFoundError:
            await js.add_consumer(
                subjects.RUNS_STREAM,
                config=_pull_consumer(durable, subjects.band_filter(band), ack_wait, max_deliver),
            )
            continue
        await converge_consumer(
            js,
            subjects.RUNS_STREAM,
            durable,
            filter_subject=subjects.band_filter(band),
            ack_wait=ack_wait,
            max_deliver=max_deliver,
        )


def _pull_consumer(
    durable: str, filter_subject: str, ack_wait: float, max_deliver: int
) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=durable,
        filter_subject=filter_subject,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait,
        max_deliver=max_deliver,
        max_ack_pending=-1,
    )
