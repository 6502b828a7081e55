"""Fixtures shared by every test tier: a real `nats-server -js` and a real MongoDB-wire server
(FerretDB on SQLite), each on a free port."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from flowstream_launcher.nats_server import (
    NatsServer,
    NatsServerError,
    free_port,
    start_nats_server,
)

from tests.mongo.server import FerretDBError, ensure_ferretdb_binary, start_ferretdb

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


FERRETDB_BUILD_ERROR = pytest.StashKey[FerretDBError | None]()


@contextlib.contextmanager
def _uncaptured(config: pytest.Config) -> Iterator[None]:
    """Let progress lines through pytest's output capture, so a long build is visible as it runs."""
    capture = config.pluginmanager.get_plugin("capturemanager")
    if capture is None:
        yield
        return
    with capture.global_and_fixture_disabled():
        yield


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build FerretDB before the first test when any selected test needs it.

    A cold build takes minutes, longer than the per-test timeout, so it must not run inside a
    test's set-up. Its failure is kept for the `mongodb_uri` fixture to report (fail in CI, skip
    elsewhere) rather than aborting the whole session here.
    """
    if not any("mongodb_uri" in getattr(item, "fixturenames", ()) for item in session.items):
        return
    try:
        with _uncaptured(session.config):
            asyncio.run(ensure_ferretdb_binary())
    except FerretDBError as exc:
        session.config.stash[FERRETDB_BUILD_ERROR] = exc


@pytest.fixture(scope="session")
async def mongodb_uri(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> AsyncIterator[str]:
    """`mongodb://127.0.0.1:<port>/` of a FerretDB with an empty SQLite directory for this session.

    Give each test its own database (`mongo_database_name`) rather than a fresh server: a start
    is cheap, but one server per session keeps the port and process count flat.
    """
    data_dir = tmp_path_factory.mktemp("ferretdb")
    try:
        build_error = pytestconfig.stash.get(FERRETDB_BUILD_ERROR, None)
        if build_error is not None:
            raise build_error
        server = await start_ferretdb(free_port(), data_dir)
    except FerretDBError as exc:
        if IN_CI:
            raise  # in CI a missing server is a failure, never a skip
        pytest.skip(f"FerretDB is not available: {exc}")
    yield server.uri
    await server.stop()


@pytest.fixture
def mongo_database_name() -> str:
    """A database name no other test uses, so tests sharing the session's server never collide."""
    return f"t_{uuid.uuid4().hex[:12]}"
