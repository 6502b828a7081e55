"""How soon a killed engine's runs can resume: the lease lapses before the command returns."""

from __future__ import annotations

import math

import pytest
from flowstream_engine.lease import RECHECK_S, lease_ttl
from flowstream_engine.settings import EngineSettings


@pytest.mark.parametrize("ack_wait", [2.0, 4.0, 10.0, 30.0])
def test_a_lease_outlives_two_missed_heartbeats_and_lapses_before_the_redelivery(
    ack_wait: float,
) -> None:
    ttl = lease_ttl(EngineSettings(engine_ack_wait_s=ack_wait))
    heartbeat = ack_wait / 3
    whole_seconds = max(1, math.ceil(ttl))  # the server's per-message TTL is in seconds

    assert ttl > 2 * heartbeat
    assert whole_seconds <= ack_wait


def test_a_redelivered_run_resumes_within_five_seconds_of_a_crash_by_default() -> None:
    settings = EngineSettings()
    # Redelivered at most `ack_wait` after the last heartbeat; the lease is gone by then, and
    # the next engine sees that within one recheck.
    assert settings.engine_ack_wait_s + RECHECK_S <= 5.0
