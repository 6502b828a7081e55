"""Who is executing a run right now: a key per run in KV `flowstream_leases` that expires.

The claim marker (run_log.py) guarantees that only one attempt can add to a run's log; the
lease keeps a second delivery of a command that is still being executed (a retried
submission, or a redelivery after a server crash) from taking the run over needlessly: while the
lease stands, the newcomer waits. The holder renews the lease with every heartbeat; the
server drops it `ttl` after the last renewal, so a killed engine's runs are free again by the
time their commands are redelivered. A run handed back releases its lease at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import math

from flowstream_shared import subjects
from nats.js.errors import KeyDeletedError, KeyNotFoundError
from nats.js.kv import KeyValue

from flowstream_engine.publisher import AckedPublisher
from flowstream_engine.run_log import ENGINE_ID
from flowstream_engine.settings import EngineSettings

TTL_HEADER = "Nats-TTL"
RECHECK_S = 0.5


def lease_ttl(settings: EngineSettings) -> float:
    """Renewed with every heartbeat (a third of the ack wait), a lease outlives two missed
    beats and lapses before the killed holder's command is redelivered, so the next engine
    finds the run free instead of waiting out the rest of the lease."""
    return max(1.0, settings.engine_ack_wait_s * 0.75)


class Leases:
    def __init__(self, publisher: AckedPublisher, kv: KeyValue, ttl_s: float) -> None:
        self._publisher = publisher
        self._kv = kv
        self._ttl = f"{max(1, math.ceil(ttl_s))}s"
        self.ttl_s = ttl_s

    async def held(self, run_id: str) -> bool:
        try:
            entry = await self._kv.get(run_id)
        except (KeyNotFoundError, KeyDeletedError):
            return False
        return bool(entry.value)

    async def wait_until_free(self, run_id: str) -> None:
        # A lease that lapses leaves no trace a watcher would see: look again every half
        # second (a killed engine's redelivered run resumes that soon after its lease lapses).
        # Only a second delivery of a command being executed waits here.
        while await self.held(run_id):  # noqa: ASYNC110
            await asyncio.sleep(min(RECHECK_S, self.ttl_s / 2))

    async def renew(self, run_id: str) -> None:
        """Hold (or keep holding) the run; best effort: the claim marker is the real fence."""
        with contextlib.suppress(Exception):
            await self._publisher.publish(
                f"$KV.{subjects.LEASES_BUCKET}.{run_id}",
                ENGINE_ID.encode(),
                {TTL_HEADER: self._ttl},
                ack_timeout_s=self.ttl_s,
            )

    async def release(self, run_id: str) -> None:
        with contextlib.suppress(Exception):
            await self._kv.delete(run_id)
