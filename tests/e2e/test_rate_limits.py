"""Rate limits count every gateway replica's requests together (ADR 0036)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.e2e.conftest import Stack
from tests.e2e.queue_support import second_gateway
from tests.support import GREET, make_token

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def other_gateway(stack: Stack) -> AsyncIterator[str]:
    async with second_gateway(stack) as base:
        yield base


def _limited(limit: int) -> dict[str, object]:
    # An hour's window: a test never straddles two windows by chance.
    return {**GREET, "config": {"rate_limit": {"limit": limit, "period": 3600}}}


async def test_a_workflow_rate_limit_answers_429_with_retry_after_through_both_gateways(
    stack: Stack, other_gateway: str
) -> None:
    user = f"rate-{uuid.uuid4().hex[:6]}"
    workflow_id = await stack.create_workflow(user, _limited(3))
    headers = {"Authorization": f"Bearer {make_token(stack.secret, user)}"}
    body = {"workflow_id": workflow_id, "inputs": {"name": "r"}}
    async with (
        stack.client(user) as first,
        httpx.AsyncClient(base_url=other_gateway, headers=headers, timeout=30) as second,
    ):
        accepted = [
            (await client.post("/api/executions", json=body)).status_code
            for client in (first, second, first)
        ]
        refused = [await client.post("/api/executions", json=body) for client in (first, second)]
        streamed = await second.post(
            f"/api/workflow/{workflow_id}/execute/stream", json={"inputs": {"name": "r"}}
        )
    assert accepted == [202, 202, 202]
    for answer in [*refused, streamed]:
        assert answer.status_code == 429
        assert 1 <= int(answer.headers["Retry-After"]) <= 3600
        error = answer.json()
        assert error["code"] == "too_many_requests" and error["status"] == 429
        assert f"workflow {workflow_id}" in error["message"]
        assert "3 runs per 3600 s" in error["message"]


async def test_the_dify_api_answers_too_many_requests(stack: Stack, other_gateway: str) -> None:
    user = f"rate-{uuid.uuid4().hex[:6]}"
    workflow_id = await stack.create_workflow(user, _limited(1))
    async with stack.client(user) as client:
        key = (await client.post("/api/keys", json={"workflow_id": workflow_id})).json()["key"]
    body = {"inputs": {"name": "d"}, "user": "end-user", "response_mode": "blocking"}
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=other_gateway, headers=headers, timeout=30) as second:
        ran = await second.post("/v1/workflows/run", json=body)
    async with stack.client(key=key) as first:
        refused = await first.post("/v1/workflows/run", json=body)
    assert ran.status_code == 200 and ran.json()["data"]["status"] == "succeeded"
    assert refused.status_code == 429
    assert refused.json()["code"] == "too_many_requests"
    assert int(refused.headers["Retry-After"]) >= 1


async def test_an_idempotent_retry_is_not_counted_again(stack: Stack) -> None:
    user = f"rate-{uuid.uuid4().hex[:6]}"
    workflow_id = await stack.create_workflow(user, _limited(1))
    body = {"workflow_id": workflow_id, "inputs": {"name": "i"}}
    async with stack.client(user) as client:
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        first = await client.post("/api/executions", json=body, headers=headers)
        retried = await client.post("/api/executions", json=body, headers=headers)
    assert first.status_code == retried.status_code == 202
    assert first.json()["id"] == retried.json()["id"]
