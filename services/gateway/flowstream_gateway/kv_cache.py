"""A read-through copy of a KV bucket, kept current by one watcher.

Every gateway replica holds the same copy, so reads cost no round trip and any replica sees what
another wrote as soon as NATS delivers it. Writers also update their own copy at once, and a key
missing from the copy is read from the bucket (one round trip, only on a miss), so a client reads
its own writes through any replica. A delete reaches other replicas through the watcher.

`mirrored` (a KV key pattern, `>` by default) limits the copy to the keys worth holding in memory:
the workflows bucket mirrors only the latest version of each workflow (`*`, keys of one token) and
reads superseded versions (`<id>.v<n>`) from the bucket when asked, without keeping them.

The watcher is an ordered consumer, which the server does not keep across its own restart (and
nats-py only notices ~20 s later, from missed heartbeats): after every reconnect the copy is
read again by a new watcher
(`rewatch`), deletions included, so a key revoked meanwhile through another replica is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Generic, TypeVar

from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

log = logging.getLogger(__name__)

T = TypeVar("T")


# Decoding a value this large takes milliseconds: off the event loop.
_DECODE_INLINE_MAX = 64 << 10


class KvCache(Generic[T]):
    def __init__(self, kv: KeyValue, decode: Callable[[bytes], T], mirrored: str = ">") -> None:
        self._kv = kv
        self._decode = decode
        self._mirrored = mirrored
        self._items: dict[str, T] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    def _is_mirrored(self, key: str) -> bool:
        return self._mirrored == ">" or (self._mirrored == "*" and "." not in key)

    async def start(self) -> None:
        watcher = await self._kv.watch(self._mirrored)
        loaded = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._follow(watcher, loaded))
        await loaded

    async def stop(self) -> None:
        await self._stop_following()
        self._stopped = True

    async def rewatch(self) -> None:
        """After a reconnect: a new watcher replaces the old one, which may be gone."""
        if self._stopped:
            return
        await self._stop_following()
        await self.start()

    async def _stop_following(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _follow(self, watcher: KeyValue.KeyWatcher, loaded: asyncio.Future[None]) -> None:
        while True:
            try:
                entry = await watcher.updates(timeout=3600)  # type: ignore[no-untyped-call]
            except TimeoutError:
                continue
            if entry is None:  # the initial values are all in
                if not loaded.done():
                    loaded.set_result(None)
                continue
            if entry.operation in ("DEL", "PURGE") or not entry.value:
                self._items.pop(entry.key, None)
                continue
            try:
                self._items[entry.key] = self._decode(entry.value)
            except ValueError:
                log.warning("ignoring undecodable entry %s in bucket", entry.key)

    async def get(self, key: str) -> T | None:
        item = self._items.get(key)
        if item is not None:
            return item
        try:
            entry = await self._kv.get(key)
        except (KeyNotFoundError, KeyDeletedError):
            return None
        if not entry.value:
            return None
        if len(entry.value) > _DECODE_INLINE_MAX:
            item = await asyncio.to_thread(self._decode, entry.value)
        else:
            item = self._decode(entry.value)
        if self._is_mirrored(key):
            self._items[key] = item
        return item

    async def keys_matching(self, pattern: str) -> list[str]:
        """Keys of the bucket matching a KV pattern (`<id>.*`), read from NATS, values left out."""
        watcher = await self._kv.watch(pattern, meta_only=True, ignore_deletes=True)
        keys: list[str] = []
        try:
            while (entry := await watcher.updates(timeout=5)) is not None:  # type: ignore[no-untyped-call]
                keys.append(entry.key)
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]
        return keys

    def values(self) -> list[T]:
        return list(self._items.values())

    def items(self) -> list[tuple[str, T]]:
        return list(self._items.items())

    async def put(self, key: str, value: T, payload: bytes) -> None:
        await self._kv.put(key, payload)
        if self._is_mirrored(key):
            self._items[key] = value

    async def create(self, key: str, value: T, payload: bytes) -> bool:
        """Store `value` unless the key holds one already (in the bucket, whichever replica
        wrote it); say whether it was stored."""
        try:
            await self._kv.create(key, payload)
        except KeyWrongLastSequenceError:
            return False
        self._items[key] = value
        return True

    async def delete(self, key: str) -> None:
        await self._kv.delete(key)
        self._items.pop(key, None)
