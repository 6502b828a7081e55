"""A least-recently-used cache bounded by the bytes its entries cost, not by their number.

A count-bounded cache of compiled templates grows with the size of what tenants send: 4,096 entries
of 100 KB sources with their compiled code reach gigabytes. Each entry here declares its cost;
the oldest entries leave once the total passes the budget. Safe to use from several threads (the
gateway validates large definitions off its event loop).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["CostBoundedCache"]

K = TypeVar("K")
V = TypeVar("V")


class CostBoundedCache(Generic[K, V]):
    def __init__(self, max_cost: int, cost: Callable[[K, V], int]) -> None:
        self.max_cost = max_cost
        self._cost = cost
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._total = 0
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        # Hits take no lock (a render looks its template up every time): each OrderedDict call
        # is atomic, and an entry evicted meanwhile is simply not moved.
        entry = self._entries.get(key)
        if entry is None:
            return None
        try:  # noqa: SIM105 - a `with suppress` costs more than the rest of a hit
            self._entries.move_to_end(key)
        except KeyError:
            pass
        return entry[0]

    def put(self, key: K, value: V) -> None:
        cost = self._cost(key, value)
        if cost > self.max_cost:
            return  # larger than the whole cache: not worth evicting everything for
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._total -= old[1]
            self._entries[key] = (value, cost)
            self._total += cost
            while self._total > self.max_cost:
                _, (_, evicted) = self._entries.popitem(last=False)
                self._total -= evicted

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._total = 0

    @property
    def total_cost(self) -> int:
        return self._total

    def __len__(self) -> int:
        return len(self._entries)
