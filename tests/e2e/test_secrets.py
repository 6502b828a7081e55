"""Credentials, masking and egress over the whole stack, as `make run` starts it.

The stack allows loopback (development) and protects its own ports; the peers the tests start
listen on loopback. Every secret used here is a fresh random value, and each test greps every
place a secret could leak for it: the SSE stream, the execution and its history, the export,
the metrics of every service and the processes' output.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Stack
from tests.e2e.peers import Peer, http_peer
from tests.e2e.test_nodes_http import finish, finished, one_call, stream_run
from tests.support import history_caught_up
from tests.unit.builders import api_call, field, llm

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def peer() -> AsyncIterator[Peer]:
    async with http_peer() as serving:
        yield serving


def user() -> str:
    return f"secrets-{uuid.uuid4().hex[:8]}"


def fresh_secret() -> str:
    return f"sk-{secrets.token_hex(12)}"


async def create(stack: Stack, owner: str, definition: dict[str, Any]) -> httpx.Response:
    async with stack.client(owner) as client:
        return await client.post("/api/workflows", json=definition)


async def everything_said_about(stack: Stack, owner: str, run_id: str, workflow_id: str) -> str:
    """All the stack will tell about a run and its workflow, as one text to grep."""
    await history_caught_up(stack.nats_url)
    texts = []
    async with stack.client(owner) as client:
        for path in (
            f"/api/executions/{run_id}",
            f"/api/executions/{run_id}/history",
            f"/api/workflows/{workflow_id}",
            f"/api/workflows/{workflow_id}/export",
            f"/v1/workflows/run/{run_id}",
            "/api/credentials",
        ):
            response = await client.get(path)
            texts.append(response.text)
    async with httpx.AsyncClient() as plain:
        for name in ("gateway", "engine", "history"):
            texts.append(
                (await plain.get(f"http://127.0.0.1:{stack.process.ports[name]}/metrics")).text
            )
    texts.extend(stack.process.output)  # every service's log lines
    return "\n".join(texts)


# The credentials API


async def test_credentials_are_created_listed_replaced_and_deleted(stack: Stack) -> None:
    owner, value = user(), fresh_secret()
    async with stack.client(owner) as client:
        created = await client.post(
            "/api/credentials",
            json={"name": "crm", "type": "header", "header_name": "X-Api-Key", "value": value,
                  "allowed_hosts": ["api.crm.test"]},
        )  # fmt: skip
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["name"] == "crm" and body["type"] == "header"
        assert body["header_name"] == "X-Api-Key" and body["allowed_hosts"] == ["api.crm.test"]
        assert set(body) == {
            "name", "type", "header_name", "param_name", "allowed_hosts", "created_at",
            "updated_at",
        }  # fmt: skip
        again = await client.post("/api/credentials", json={"name": "crm", "value": value})
        assert again.status_code == 409 and again.json()["code"] == "conflict"

        replaced = await client.put("/api/credentials/crm", json={"value": fresh_secret()})
        assert replaced.status_code == 200 and replaced.json()["type"] == "bearer"
        listed = await client.get("/api/credentials")
        assert [c["name"] for c in listed.json()] == ["crm"]
        assert (
            value not in listed.text
            and value not in (await client.get("/api/credentials/crm")).text
        )

        bad = await client.post("/api/credentials", json={"name": "x y", "value": value})
        assert bad.status_code == 400 and bad.json()["code"] == "invalid_param"
        assert value not in bad.text

        assert (await client.delete("/api/credentials/crm")).status_code == 204
        assert (await client.get("/api/credentials/crm")).status_code == 404
        assert (await client.get("/api/credentials")).json() == []


async def test_another_user_neither_sees_nor_uses_my_credential(stack: Stack, peer: Peer) -> None:
    owner, other, value = user(), user(), fresh_secret()
    async with stack.client(owner) as client:
        assert (
            await client.post("/api/credentials", json={"name": "mine", "value": value})
        ).status_code == 201
    async with stack.client(other) as client:
        assert (await client.get("/api/credentials")).json() == []
        assert (await client.get("/api/credentials/mine")).status_code == 404
        assert (await client.delete("/api/credentials/mine")).status_code == 404

    stealing = one_call(api_call("call", f"{peer.url}/echo/steal", credential="mine"))
    refused = await create(stack, other, stealing)

    assert refused.status_code == 400
    assert refused.json()["message"] == (
        "node `call`: unknown credential 'mine' (create it with POST /api/credentials)"
    )


async def test_an_app_key_cannot_manage_credentials(stack: Stack) -> None:
    owner = user()
    workflow_id = await stack.create_workflow(owner, one_call(api_call("call", "https://x.test/")))
    async with stack.client(owner) as client:
        issued = await client.post("/api/keys", json={"workflow_id": workflow_id})
    async with stack.client(key=issued.json()["key"]) as app:
        for response in (
            await app.get("/api/credentials"),
            await app.post("/api/credentials", json={"name": "k", "value": fresh_secret()}),
            await app.delete("/api/credentials/k"),
        ):
            assert response.status_code == 403, response.text


# Using a credential


async def test_the_simplest_credential_works_as_written_and_never_shows(
    stack: Stack, peer: Peer
) -> None:
    owner, value = user(), fresh_secret()
    async with stack.client(owner) as client:
        stored = await client.post(
            "/api/credentials", json={"name": "crm", "type": "bearer", "value": value}
        )
    assert stored.status_code == 201, stored.text
    path = f"/echo/{uuid.uuid4().hex[:10]}"
    definition = one_call(
        api_call("call", f"{peer.url}{path}", credential="crm"),
        echoed="{{call.body.headers.authorization}}",
    )
    workflow_id = await stack.create_workflow(owner, definition)

    events = await stream_run(stack, workflow_id, {}, owner)

    assert finish(events)["status"] == "succeeded", finish(events)
    assert peer.received(path)[-1].headers["authorization"] == f"Bearer {value}"
    node = finished(events, "call")
    assert node["inputs"]["headers"]["Authorization"] == "***"
    # The peer echoed the header into its answer, and the END node mapped it to an output.
    assert finish(events)["outputs"] == {"echoed": "Bearer ***"}
    said = await everything_said_about(stack, owner, events[0]["workflow_run_id"], workflow_id)
    assert value not in said
    assert value not in str(events)


async def test_a_credential_outside_its_allowed_hosts_fails_the_node(
    stack: Stack, peer: Peer
) -> None:
    owner, value = user(), fresh_secret()
    async with stack.client(owner) as client:
        await client.post(
            "/api/credentials",
            json={"name": "crm", "value": value, "allowed_hosts": ["api.crm.test"]},
        )
    path = f"/echo/{uuid.uuid4().hex[:10]}"
    workflow_id = await stack.create_workflow(
        owner, one_call(api_call("call", f"{peer.url}{path}", credential="crm"))
    )

    events = await stream_run(stack, workflow_id, {}, owner)

    assert finished(events, "call")["error"] == (
        "credential 'crm' may not be sent to 127.0.0.1 (allowed hosts: api.crm.test)"
    )
    assert peer.received(path) == []


# The engine's environment


async def test_the_jwt_secret_cannot_be_asked_for(stack: Stack, peer: Peer) -> None:
    """The attack that sent `Bearer <FLOWSTREAM_JWT_SECRET>` to the author's server."""
    before = len(peer.requests)
    hostile = one_call(
        llm("ask", f"{peer.url}/v1", api_key_env="FLOWSTREAM_JWT_SECRET", prompt="hi")
    )

    refused = await create(stack, user(), hostile)

    assert refused.status_code == 400
    message = refused.json()["message"]
    assert message.startswith("node `ask`: ")
    assert "api_key_env is not supported" in message
    assert len(peer.requests) == before
    assert stack.secret not in refused.text


# Egress


def monitor_port(stack: Stack) -> int:
    for line in stack.process.output:
        found = re.search(r"Starting http monitor on [\d.]+:(\d+)", line)
        if found:
            return int(found[1])
    raise AssertionError("the NATS monitoring port is not in the stack's output")


async def test_the_stacks_own_ports_are_refused(stack: Stack, peer: Peer) -> None:
    ports = stack.process.ports
    targets = [
        f"http://127.0.0.1:{ports['gateway']}/api/workflows",
        f"http://localhost:{ports['engine']}/metrics",
        f"http://2130706433:{ports['history']}/healthz",
        f"http://[::ffff:127.0.0.1]:{ports['nats']}/",
        f"http://0x7f.1:{monitor_port(stack)}/varz",
        f"http://0.0.0.0:{ports['gateway']}/api/workflows",
        # A redirect chain: the peer twice, then the gateway.
        f"{peer.url}/redirect/a?to={peer.url}/redirect/b%3Fto%3Dhttp://127.0.0.1:{ports['gateway']}/api/workflows",
    ]
    owner = user()
    for index, url in enumerate(targets):
        workflow_id = await stack.create_workflow(owner, one_call(api_call(f"c{index}", url)))
        events = await stream_run(stack, workflow_id, {}, owner)
        error = finished(events, f"c{index}")["error"] or ""
        assert "egress denied: " in error and error.endswith("is a flowstream endpoint"), (
            url,
            error,
        )


async def test_the_banner_says_loopback_is_allowed(stack: Stack) -> None:
    egress = [line for line in stack.banner if line.strip().startswith("Egress:")]
    assert egress and "127.0.0.0/8" in egress[0] and "always refused" in egress[0]


# Literal secrets in definitions


async def test_literal_secrets_are_masked_for_users_and_app_keys_and_round_trip(
    stack: Stack, peer: Peer
) -> None:
    owner, value = user(), fresh_secret()
    path = f"/echo/{uuid.uuid4().hex[:10]}"
    definition = one_call(
        api_call(
            "call",
            f"{peer.url}{path}?api_key={value}",
            headers={"X-Vendor-Token": value, "Accept": "application/json"},
        ),
        field("name"),
    )
    workflow_id = await stack.create_workflow(owner, definition)
    async with stack.client(owner) as client:
        shown = (await client.get(f"/api/workflows/{workflow_id}")).json()
        exported = (await client.get(f"/api/workflows/{workflow_id}/export")).json()
        key = (await client.post("/api/keys", json={"workflow_id": workflow_id})).json()["key"]
    async with stack.client(key=key) as app:
        by_app = (await app.get(f"/api/workflows/{workflow_id}")).text

    for text in (str(shown), str(exported), by_app):
        assert value not in text
    config = shown["definition"]["nodes"][1]["config"]
    assert config["headers"]["X-Vendor-Token"] == f"__masked-{workflow_id}-v1__"
    assert config["headers"]["Accept"] == "application/json"

    # The export imports for its owner with the secret intact.
    async with stack.client(owner) as client:
        imported = await client.post("/api/workflows/import", json=exported)
    assert imported.status_code == 201, imported.text
    events = await stream_run(stack, imported.json()["id"], {"name": "Ada"}, owner)
    assert finish(events)["status"] == "succeeded", finish(events)
    seen = peer.received(path)[-1]
    assert seen.headers["x-vendor-token"] == value and seen.query["api_key"] == value
    said = await everything_said_about(stack, owner, events[0]["workflow_run_id"], workflow_id)
    assert value not in said

    # Anyone else importing it gets a 400, not the secret.
    async with stack.client(user()) as client:
        stolen = await client.post("/api/workflows/import", json=exported)
    assert stolen.status_code == 400 and value not in stolen.text
