"""Streams and KV buckets converge to the configured limits when a service starts, even when
they already exist with others (an operator changed a setting between two releases)."""

from __future__ import annotations

from flowstream_launcher.nats_server import NatsServer
from flowstream_shared import subjects
from flowstream_shared.settings import NatsSettings
from flowstream_shared.topology import ensure_topology
from nats.aio.client import Client


async def test_existing_buckets_and_streams_take_the_configured_limits(
    nc: Client, nats_server: NatsServer
) -> None:
    js = nc.jetstream()
    default = NatsSettings(nats_url=nats_server.url)
    changed = NatsSettings(
        nats_url=nats_server.url, events_max_age_s=3600, events_max_bytes=1 << 30
    )
    try:
        await ensure_topology(js, changed)

        runs_bucket = (await js.stream_info(f"KV_{subjects.RUNS_BUCKET}")).config
        events = (await js.stream_info(subjects.EVENTS_STREAM)).config
        assert runs_bucket.max_age == 3600 and runs_bucket.num_replicas == 1
        assert runs_bucket.max_msgs_per_subject == 1
        assert events.max_bytes == 1 << 30 and events.max_age == 3600
        # What the bucket was created with beyond those limits is kept.
        assert runs_bucket.subjects == [f"$KV.{subjects.RUNS_BUCKET}.>"]
    finally:
        await ensure_topology(js, default)
    assert (await js.stream_info(f"KV_{subjects.RUNS_BUCKET}")).config.max_age == (
        default.events_max_age_s
    )
