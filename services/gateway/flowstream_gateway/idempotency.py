"""`Idempotency-Key` (DESIGN §3.5): the same key from the same caller within a day is one run.

The run id is derived from the caller and the key, so every retry names the same run even when
the first attempt's outcome is unknown (a submission that timed out may still be stored). The
KV bucket `flowstream_idempotency` remembers what the first request asked for: a retry asking
for something else with the same key is refused rather than answered with the wrong run.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from flowstream_gateway.errors import ApiError


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
            await self._kv.create(digest.hex(), record)
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
