"""JetStream writes that ride out a stream leader's election.

While a replicated stream elects a new leader (its leader's node went away), a publish to it is
answered "no responders" (nats-py: `NoStreamResponseError`) or "temporarily unavailable" at
once, for a few seconds. Nobody took the message, so sending it again cannot store it twice:
a submission waits through the election instead of answering 503 for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from nats.js.errors import NoStreamResponseError, ServiceUnavailableError

log = logging.getLogger(__name__)

T = TypeVar("T")

# Longer than an election on loopback (2 to 6 s seen), short enough for a waiting HTTP client.
ELECTION_PATIENCE_S = 10.0
_NOBODY_TOOK_IT = (NoStreamResponseError, ServiceUnavailableError)


async def through_election(
    write: Callable[[], Awaitable[T]], patience_s: float = ELECTION_PATIENCE_S
) -> T:
    """`write()`, again while the stream answers that nobody took it, for up to `patience_s`."""
    deadline = time.monotonic() + patience_s
    delay = 0.1
    while True:
        try:
            return await write()
        except _NOBODY_TOOK_IT as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.info("JetStream write not taken (%r): a leader election; sending again", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
