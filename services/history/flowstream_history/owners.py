"""Who owns a run: what history must know before it records any of the run's events.

In order: what this process already found, the store (a run recorded with its owner, pending ones
included), the run index (KV `flowstream_runs`, written by the gateway before the run is queued),
and last the run's own `workflow_started` / `workflow_finished` in the same batch (they carry
`data.user_id`, for runs that never went through a gateway). Only owners that were found are
remembered: a run not found now is looked up again next time, never left ownerless.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Mapping

from flowstream_shared.commands import RunOwner
from nats.js.errors import KeyDeletedError, KeyNotFoundError
from nats.js.kv import KeyValue
from pydantic import ValidationError

from flowstream_history.projection import Owner
from flowstream_history.store import ExecutionStore

log = logging.getLogger(__name__)

CACHE_SIZE = 65_536


class OwnerLookup:
    def __init__(self, store: ExecutionStore, runs_kv: KeyValue, cache_size: int = CACHE_SIZE):
        self._store = store
        self._kv = runs_kv
        self._cache_size = cache_size
        self._cache: OrderedDict[str, Owner] = OrderedDict()

    def remember(self, run_id: str, owner: Owner) -> None:
        self._cache[run_id] = owner
        self._cache.move_to_end(run_id)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def known(self, run_id: str) -> Owner | None:
        return self._cache.get(run_id)

    async def owners(self, run_ids: list[str], claims: Mapping[str, str]) -> dict[str, Owner]:
        """The owner of every run that has one now; `claims`: run id → the user id its own
        `workflow_started`/`workflow_finished` in this batch names (checked by the caller
        against the event's subject)."""
        found = {r: o for r in run_ids if (o := self._cache.get(r)) is not None}
        missing = [r for r in run_ids if r not in found]
        if missing:
            recorded = await self._store.owners(missing)
            found.update(recorded)
            missing = [r for r in missing if r not in recorded]
        if missing:
            indexed = await asyncio.gather(*(self._indexed(r) for r in missing))
            found.update(
                {r: Owner.of(entry) for r, entry in zip(missing, indexed, strict=True) if entry}
            )
            missing = [r for r in missing if r not in found]
        found.update({r: Owner(claims[r]) for r in missing if r in claims})
        for run_id in run_ids:
            if run_id in found and run_id not in self._cache:
                self.remember(run_id, found[run_id])
        return found

    async def _indexed(self, run_id: str) -> RunOwner | None:
        try:
            entry = await self._kv.get(run_id)
        except (KeyNotFoundError, KeyDeletedError):
            return None  # not indexed (yet, or a run submitted without a gateway)
        except Exception as exc:  # the index not answering: not found *now*, asked again later
            log.warning("run index lookup of %s failed: %s", run_id, exc)
            return None
        if not entry.value:
            return None
        try:
            return RunOwner.model_validate_json(entry.value)
        except ValidationError:
            log.warning("run index entry of %s is not a run owner; ignored", run_id)
            return None
