"""The JetStream streams and KV buckets flowstream needs, declared idempotently by every service.

Every service calls :func:`ensure_topology` at start-up, so any of them can start first.
"""

from __future__ import annotations

import logging

from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, BucketNotFoundError, NotFoundError

from flowstream_shared import subjects
from flowstream_shared.settings import NatsSettings

log = logging.getLogger(__name__)

# A retried publish inside this window is stored once (Nats-Msg-Id).
DUPLICATE_WINDOW_S = 120.0
# Cancel flags only matter while a run can still be running.
CONTROL_TTL_S = 24 * 3600.0


def runs_stream(settings: NatsSettings) -> StreamConfig:
    return StreamConfig(
        name=subjects.RUNS_STREAM,
        subjects=[subjects.SUBMIT_SUBJECT],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW_S,
        num_replicas=settings.stream_replicas,
    )


def events_stream(settings: NatsSettings) -> StreamConfig:
    return StreamConfig(
        name=subjects.EVENTS_STREAM,
        subjects=[subjects.ALL_EVENTS],
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        storage=StorageType.FILE,
        max_age=settings.events_max_age_s,
        duplicate_window=DUPLICATE_WINDOW_S,
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
            bucket=subjects.RUNS_BUCKET,
            ttl=settings.events_max_age_s,
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


async def ensure_topology(js: JetStreamContext, settings: NatsSettings) -> None:
    await _ensure_stream(js, runs_stream(settings))
    await _ensure_stream(js, events_stream(settings))
    for bucket in buckets(settings):
        try:
            await js.key_value(bucket.bucket)
        except (BucketNotFoundError, NotFoundError):
            await js.create_key_value(config=bucket)
