"""Fixtures shared by every test tier: a real `nats-server -js` on a free port."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from flowstream_launcher.nats_server import (
    NatsServer,
    NatsServerError,
    free_port,
    start_nats_server,
)

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
async def nats_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[NatsServer]:
    store: Path = tmp_path_factory.mktemp("nats")
    try:
        server = await start_nats_server(free_port(), store)
    except NatsServerError:
        if IN_CI:
            raise  # in CI a missing server is a failure, never a skip
        pytest.skip("nats-server is not available")
    yield server
    await server.stop()
