"""`make run` with FLOWSTREAM_MONGODB_URI: the same stack, history in a MongoDB-wire server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from flowstream_launcher.child_stack import child_stack
from pymongo import AsyncMongoClient

from tests.e2e.conftest import ROOT, Stack
from tests.support import GREET, history_caught_up


@pytest.fixture(scope="module")
async def mongo_stack(
    tmp_path_factory: pytest.TempPathFactory, mongodb_uri: str
) -> AsyncIterator[tuple[Stack, str]]:
    database = f"stack_{uuid.uuid4().hex[:8]}"
    uri = mongodb_uri.rstrip("/") + f"/{database}"
    data_dir: Path = tmp_path_factory.mktemp("flowstream-mongo")
    async with child_stack(
        data_dir, cwd=ROOT, extra_env={"FLOWSTREAM_MONGODB_URI": uri}
    ) as process:
        yield Stack(process), uri


async def test_runs_are_recorded_in_mongodb(mongo_stack: tuple[Stack, str]) -> None:
    stack, uri = mongo_stack
    assert any("MongoStore" in line for line in stack.process.output)
    workflow_id = await stack.create_workflow("alice", GREET)
    async with stack.client("alice") as client:
        run = await client.post(
            f"/api/workflow/{workflow_id}/execute",
            json={"inputs": {"name": "Mo"}, "response_mode": "blocking"},
        )
        run_id = run.json()["workflow_run_id"]
        await history_caught_up(stack.nats_url)
        detail = (await client.get(f"/api/executions/{run_id}")).json()
    assert detail["status"] == "succeeded" and len(detail["nodes"]) == 3
    mongo: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(uri)
    try:
        document = await mongo.get_default_database()["workflow_executions"].find_one(
            {"_id": run_id}
        )
    finally:
        await mongo.close()
    assert document is not None and document["outputs"] == {"answer": "Hello Mo!"}
