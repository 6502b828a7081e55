"""Percentiles of the samples the benchmark times itself (NATS round trips, disconnects)."""

from __future__ import annotations

import math
import statistics


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return math.nan
    index = min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1)))
    return sorted_values[index]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan
