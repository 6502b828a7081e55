"""`Idempotency-Key` (DESIGN §3.5): the same key from the same caller within a day is one run.

The run id is derived from the caller and the key, so every retry names the same run even when
the first attempt's outcome is unknown (a submission that timed out may still be stored). The
KV bucket `flowstream_idempotency` remembers what the first request asked for: a retry asking
for something else with the same key is refused rather than answered with the wrong run.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from flowstream_gateway.errors import ApiError

_RACE_ATTEMPTS = 5


@dataclass(frozen=True)
class Submission:
    run_id: str
    # The key was seen before: the run may exist already, and its events may have begun.
    repeated: bool


def fingerprint(**request: Any) -> str:
    """What a request asks for, independent of key order."""
    return hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()


class IdempotencyKeys:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def submission(self, user_id: str, key: str, request: str) -> Submission:
        digest = hashlib.sha256(f"{user_id}\n{key}".encode()).digest()
        run_id = str(uuid.UUID(bytes=digest[:16], version=4))
        record = json.dumps({"run_id": run_id, "request": request}).encode()
        try:
            await self._create(digest.hex(), record)
        except KeyWrongLastSequenceError:
            entry = await self._kv.get(digest.hex())
            first = json.loads(entry.value or b"{}")
            if first.get("request") != request:
                raise ApiError(
                    409,
                    "conflict",
                    "this Idempotency-Key was used for a different request in the last 24 "
                    "hours; use a new key for a new request",
                ) from None
            return Submission(run_id, repeated=True)
        return Submission(run_id, repeated=False)

    async def _create(self, key: str, record: bytes) -> None:
        # On a replicated bucket, a create racing another one for the same key may be refused
        # before the other is stored (JetStream error 10164): nats-py then finds no key and
        # raises KeyNotFoundError. Asked again, the create meets the stored key.
        delay = 0.01
        for _ in range(_RACE_ATTEMPTS - 1):
            try:
                await self._kv.create(key, record)
                return
            except KeyNotFoundError:
                await asyncio.sleep(delay)
                delay *= 2
        await self._kv.create(key, record)
