"""Compare-and-set changes of a slot set stored in one KV key (flowstream_shared.slots).

Used where a set is changed without a cached copy: a gateway counting a caller's active runs,
an engine removing an ended run from them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from flowstream_shared.slots import SlotSet

_ATTEMPTS = 50
T = TypeVar("T")


class Contended(Exception):
    """The key kept changing under every attempt."""


async def read_slots(kv: KeyValue, key: str) -> tuple[int | None, SlotSet]:
    try:
        entry = await kv.get(key)
    except (KeyNotFoundError, KeyDeletedError):
        return None, SlotSet()
    if not entry.value:
        return entry.revision, SlotSet()
    return entry.revision, SlotSet.model_validate_json(entry.value)


async def change_slots(kv: KeyValue, key: str, change: Callable[[SlotSet], tuple[SlotSet, T]]) -> T:
    """Apply `change` (which returns the new set and a result) until the write wins; a change
    that returns the set unchanged writes nothing."""
    for _ in range(_ATTEMPTS):
        revision, current = await read_slots(kv, key)
        pruned = current.pruned(time.time())
        updated, result = change(pruned)
        if updated == current:
            return result
        payload = updated.model_dump_json().encode()
        try:
            if revision is None:
                await kv.create(key, payload)
            else:
                await kv.update(key, payload, last=revision)
        except (KeyWrongLastSequenceError, KeyNotFoundError, KeyDeletedError):
            continue
        except Exception as exc:  # `create` raced with another create
            if "wrong last sequence" in str(exc).lower():
                continue
            raise
        return result
    raise Contended(key)
