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

from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import NoStreamResponseError, ServiceUnavailableError

log = logging.getLogger(__name__)

T = TypeVar("T")

# Longer than an election (a follower stands after 4 to 9 s without its leader's heartbeat;
# 4 to 7.5 s measured), short enough for a waiting HTTP client.
ELECTION_PATIENCE_S = 12.0
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


# A read only the stream's leader answers (a bucket without direct gets, read-your-writes) goes
# unanswered while the leader is elected, and a request in flight on a connection to a node that
# went away is never answered. A read can always be asked again: each attempt is bounded so the
# next one, after the election or the reconnect, is answered within the HTTP client's patience.
READ_ATTEMPT_S = 2.0
READ_PATIENCE_S = ELECTION_PATIENCE_S


async def read_through_election(
    read: Callable[[], Awaitable[T]],
    attempt_s: float = READ_ATTEMPT_S,
    patience_s: float = READ_PATIENCE_S,
) -> T:
    """`read()`, asked again while it goes unanswered, for up to `patience_s`."""
    deadline = time.monotonic() + patience_s
    while True:
        remaining = deadline - time.monotonic()
        try:
            return await asyncio.wait_for(read(), max(min(attempt_s, remaining), 0.1))
        except (TimeoutError, *_NOBODY_TOOK_IT) as exc:  # nats' timeout is a TimeoutError
            if time.monotonic() + 0.1 >= deadline:
                raise NatsTimeout from exc  # answered as "NATS not answering" (503)
            log.info("JetStream read not answered (%r); asking again", exc)
            if not isinstance(exc, TimeoutError):
                await asyncio.sleep(0.1)  # answered at once: let the election go on
