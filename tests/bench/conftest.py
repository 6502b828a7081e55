"""The benchmark harness's own parts, on real processes: wrk, nats-server, a flame graph."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import IN_CI


@pytest.fixture(scope="session")
def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        if IN_CI:
            raise AssertionError("wrk is missing: `make test` installs it (`make wrk`)")
        pytest.skip("wrk is not installed (`make wrk`)")
    return found
