"""Who owns a run: a miss is never remembered, and authoritative sources come before claims."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, cast

from flowstream_history.owners import OwnerLookup
from flowstream_history.projection import Owner
from flowstream_history.store import ExecutionStore
from flowstream_shared.commands import RunOwner
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue


@dataclass
class _Entry:
    value: bytes


@dataclass
class _Index:
    """The run index as KV answers: an entry, or KeyNotFoundError."""

    entries: dict[str, RunOwner] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    async def get(self, key: str) -> _Entry:
        self.asked.append(key)
        if key not in self.entries:
            raise KeyNotFoundError
        return _Entry(self.entries[key].model_dump_json().encode())


@dataclass
class _Recorded:
    owners_of: dict[str, str] = field(default_factory=dict)

    async def owners(self, run_ids: list[str]) -> dict[str, Owner]:
        return {r: Owner(self.owners_of[r]) for r in run_ids if r in self.owners_of}


def _lookup(index: _Index, recorded: _Recorded) -> OwnerLookup:
    return OwnerLookup(cast(ExecutionStore, recorded), cast(KeyValue, index))


def _owner(run_id: str, user_id: str = "alice", **more: Any) -> RunOwner:
    return RunOwner(
        run_id=run_id,
        task_id="t",
        workflow_id="wf",
        user_id=user_id,
        created_at=time.time(),
        **more,
    )


async def test_a_run_not_found_is_looked_up_again_and_found_once_indexed() -> None:
    index, recorded = _Index(), _Recorded()
    lookup = _lookup(index, recorded)
    assert await lookup.owners(["r1"], {}) == {}
    assert await lookup.owners(["r1"], {}) == {}
    assert index.asked == ["r1", "r1"]  # the miss was not remembered
    index.entries["r1"] = _owner("r1", execution_name="nightly")
    found = await lookup.owners(["r1"], {})
    assert found["r1"].user_id == "alice" and found["r1"].execution_name == "nightly"
    await lookup.owners(["r1"], {})
    assert index.asked == ["r1", "r1", "r1"]  # found: remembered


async def test_the_store_and_the_index_come_before_a_claim() -> None:
    index, recorded = _Index(), _Recorded({"r1": "alice"})
    index.entries["r2"] = _owner("r2", user_id="bob")
    lookup = _lookup(index, recorded)
    found = await lookup.owners(["r1", "r2", "r3"], {"r1": "x", "r2": "y", "r3": "carol"})
    assert {r: o.user_id for r, o in found.items()} == {"r1": "alice", "r2": "bob", "r3": "carol"}
    assert index.asked == ["r2", "r3"]  # the store knew r1; the claim counts last
