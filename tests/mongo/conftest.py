"""A PyMongo async client on the session's FerretDB, with a database of its own per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase


@pytest.fixture
async def mongo_db(
    mongodb_uri: str, mongo_database_name: str
) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    """A fresh, uniquely named database, dropped afterwards so the session's server stays small."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongodb_uri, serverSelectionTimeoutMS=5000
    )
    try:
        yield client[mongo_database_name]
        await client.drop_database(mongo_database_name)
    finally:
        await client.close()
