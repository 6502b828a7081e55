"""The gateway's KV mirror reads through to the bucket on a miss."""

from __future__ import annotations

from flowstream_gateway.kv_cache import KvCache
from flowstream_shared import subjects
from nats.aio.client import Client


async def test_a_value_the_watcher_has_not_delivered_is_read_from_the_bucket(nc: Client) -> None:
    kv = await nc.jetstream().key_value(subjects.WORKFLOWS_BUCKET)
    cache: KvCache[bytes] = KvCache(kv, bytes)
    await cache.start()
    await cache.stop()  # no watcher: only the read-through can find new keys now
    await kv.put("written-elsewhere", b"v1")
    assert await cache.get("written-elsewhere") == b"v1"
    assert await cache.get("never-written") is None
