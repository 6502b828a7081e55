"""Authentication, user isolation and bad input: clear 4xx bodies, nothing queued for the engine."""

from __future__ import annotations

import copy
from typing import Any

import nats
import pytest

from tests.e2e.conftest import Stack
from tests.support import GREET, make_token

JSON_HEADERS = {"content-type": "application/json"}


def _assert_error(body: dict[str, Any], status: int, code: str) -> None:
    assert set(body) == {"code", "message", "status"}
    assert body["status"] == status and body["code"] == code and body["message"]


async def _submitted_runs(stack: Stack) -> int:
    nc = await nats.connect(stack.nats_url)
    try:
        info = await nc.jetstream().stream_info("FLOWSTREAM_RUNS")
        last: int = info.state.last_seq
        return last
    finally:
        await nc.close()


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer not-a-jwt",
        "Bearer app-unknown-key",
    ],
)
async def test_missing_or_bad_credentials_answer_401(
    stack: Stack, authorization: str | None
) -> None:
    async with stack.client() as client:
        headers = {"Authorization": authorization} if authorization else {}
        response = await client.get("/api/workflows", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="api"'
    _assert_error(response.json(), 401, "unauthorized")


async def test_expired_and_forged_tokens_answer_401(stack: Stack) -> None:
    expired = make_token(stack.secret, "alice", ttl_s=-10)
    forged = make_token("another-secret-of-enough-length-0123456789", "alice")
    async with stack.client() as client:
        for token in (expired, forged):
            response = await client.get(
                "/api/workflows", headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == 401
            _assert_error(response.json(), 401, "unauthorized")


async def test_another_users_workflow_answers_404_everywhere(stack: Stack) -> None:
    workflow_id = await stack.create_workflow("alice", GREET)
    async with stack.client("bob") as bob:
        for method, url, body in [
            ("GET", f"/api/workflows/{workflow_id}", None),
            ("DELETE", f"/api/workflows/{workflow_id}", None),
            ("POST", f"/api/workflow/{workflow_id}/execute", {"inputs": {"name": "x"}}),
            ("POST", f"/api/workflow/{workflow_id}/execute/stream", {"inputs": {"name": "x"}}),
            ("POST", f"/v1/workflows/{workflow_id}/run", {"inputs": {"name": "x"}, "user": "b"}),
            ("POST", "/api/keys", {"workflow_id": workflow_id}),
        ]:
            response = await bob.request(method, url, json=body)
            assert response.status_code == 404, (method, url, response.text)
            _assert_error(response.json(), 404, "not_found")
        listing = (await bob.get("/api/workflows", params={"size": 100})).json()
        assert workflow_id not in {item["id"] for item in listing["items"]}
    async with stack.client("alice") as alice:
        assert (await alice.get(f"/api/workflows/{workflow_id}")).status_code == 200


async def test_an_api_key_reaches_its_own_workflow_only(stack: Stack) -> None:
    mine = await stack.create_workflow("alice", GREET)
    other = await stack.create_workflow("alice", GREET)
    async with stack.client("alice") as alice:
        issued = await alice.post("/api/keys", json={"workflow_id": mine, "name": "ci"})
        assert issued.status_code == 201
        key = issued.json()["key"]
        assert key.startswith("app-")
    async with stack.client(key=key) as client:
        ran = await client.post("/v1/workflows/run", json={"inputs": {"name": "K"}, "user": "u"})
        assert ran.status_code == 200 and ran.json()["data"]["workflow_id"] == mine
        denied = await client.post(f"/api/workflow/{other}/execute", json={"inputs": {"name": "K"}})
        assert denied.status_code == 404
        forbidden = await client.post("/api/workflows", json=GREET)
        assert forbidden.status_code == 403
        _assert_error(forbidden.json(), 403, "forbidden")
    async with stack.client("alice") as alice:
        listed = (await alice.get("/api/keys")).json()
        key_id = next(k["id"] for k in listed if k["workflow_id"] == mine)
        assert all("key" not in k for k in listed)
        assert (await alice.delete(f"/api/keys/{key_id}")).status_code == 204
    async with stack.client(key=key) as client:
        revoked = await client.post(
            "/v1/workflows/run", json={"inputs": {"name": "K"}, "user": "u"}
        )
        assert revoked.status_code == 401


def _broken(mutate: str) -> dict[str, Any]:
    definition = copy.deepcopy(GREET)
    nodes = definition["nodes"]
    connections = definition["connections"]
    if mutate == "unknown type":
        nodes[1]["type"] = "TELEPORT"
    elif mutate == "dangling connection":
        connections.append({"from": "greet", "to": "ghost"})
    elif mutate == "cycle":
        nodes.insert(2, {"id": "again", "type": "TEMPLATE", "config": {"template": "x"}})
        connections.extend([{"from": "greet", "to": "again"}, {"from": "again", "to": "greet"}])
    elif mutate == "no start":
        definition["nodes"] = nodes[1:]
        definition["connections"] = connections[1:]
    elif mutate == "no end":
        definition["nodes"] = nodes[:2]
        definition["connections"] = connections[:1]
    elif mutate == "bad expression":
        nodes[1]["config"]["template"] = "Hello {{ input.name >= }}"
    elif mutate == "unreachable":
        nodes.append({"id": "island", "type": "TEMPLATE", "config": {"template": "x"}})
    return definition


@pytest.mark.parametrize(
    ("mutate", "names"),
    [
        ("unknown type", "greet"),
        ("dangling connection", "ghost"),
        ("cycle", "again"),
        ("no start", "START"),
        ("no end", "END"),
        ("bad expression", "greet"),
        ("unreachable", "island"),
    ],
)
async def test_invalid_definitions_answer_400_naming_the_problem(
    stack: Stack, mutate: str, names: str
) -> None:
    async with stack.client("alice") as client:
        response = await client.post("/api/workflows", json=_broken(mutate))
    assert response.status_code == 400, response.text
    body = response.json()
    _assert_error(body, 400, "invalid_param")
    assert names in body["message"]


async def test_bad_run_requests_answer_4xx_and_queue_nothing(stack: Stack) -> None:
    workflow_id = await stack.create_workflow("alice", GREET)
    url = f"/api/workflow/{workflow_id}/execute"
    before = await _submitted_runs(stack)
    async with stack.client("alice") as client:
        cases: list[tuple[int, str, dict[str, Any]]] = [
            (400, "name is required", {"json": {"inputs": {}}}),
            (400, "name in input form must be a string", {"json": {"inputs": {"name": 42}}}),
            (400, "inputs", {"json": {"inputs": "not an object"}}),
            (400, "response_mode", {"json": {"inputs": {"name": "a"}, "response_mode": "later"}}),
            (400, "not valid JSON", {"content": b'{"inputs": ', "headers": JSON_HEADERS}),
            (400, "unexpected", {"json": {"inputs": {"name": "a"}, "unexpected": 1}}),
            (413, "exceeds", {"json": {"inputs": {"name": "x" * (2 << 20)}}}),
        ]  # fmt: skip
        for status, fragment, request in cases:
            response = await client.post(url, **request)
            assert response.status_code == status, (request, response.text)
            body = response.json()
            assert body["status"] == status and fragment in body["message"], body
        unknown = await client.post("/api/workflow/no-such-workflow/execute", json={"inputs": {}})
        assert unknown.status_code == 404
    assert await _submitted_runs(stack) == before
