"""Who owns a run: read once per run from the run index (KV `flowstream_runs`)."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

from flowstream_shared.commands import RunOwner

_CACHE_SIZE = 65_536


class OwnerLookup:
    def __init__(self, runs_kv: Any) -> None:
        self._kv = runs_kv
        self._cache: OrderedDict[str, RunOwner | None] = OrderedDict()

    async def owners(self, run_ids: list[str]) -> dict[str, RunOwner | None]:
        missing = [r for r in run_ids if r not in self._cache]
        found = await asyncio.gather(*(self._fetch(r) for r in missing))
        for run_id, owner in zip(missing, found, strict=True):
            self._cache[run_id] = owner
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return {r: self._cache.get(r) for r in run_ids}

    async def _fetch(self, run_id: str) -> RunOwner | None:
        try:
            entry = await self._kv.get(run_id)
        except Exception:  # not indexed (a run submitted without the gateway): nobody's
            return None
        return RunOwner.model_validate_json(entry.value) if entry.value else None
