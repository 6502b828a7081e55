"""NATS is a trust boundary: the attacks a client reaching the NATS port could try, each refused.

Everything here is a plain nats-py client against the stack's real nats-server, with the
gateway answering the auth callout: anonymous and bad tokens, reading another tenant's events,
forging events, commands, control messages and KV entries, asking history for someone else.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import nats
import pytest
from flowstream_shared import subjects
from flowstream_shared.nats_access import Identity
from nats.aio.client import Client

from tests.e2e.conftest import Stack
from tests.support import GREET, delay_then_template, make_token

PATIENCE = 20.0


class Collected(list[Any]):
    """A list that wakes whoever waits for it to hold enough of something."""

    def __init__(self) -> None:
        super().__init__()
        self._changed = asyncio.Event()

    def append(self, item: Any) -> None:
        super().append(item)
        self._changed.set()

    async def holding(self, count: int, matching: Callable[[Any], bool] = bool) -> None:
        async with asyncio.timeout(PATIENCE):
            while sum(1 for item in self if matching(item)) < count:
                self._changed.clear()
                await self._changed.wait()


@asynccontextmanager
async def as_subscriber(stack: Stack, token: str) -> AsyncIterator[tuple[Client, Collected]]:
    """Connected to NATS with a flowstream token; the errors the server sends are collected."""
    errors = Collected()

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    nc = await nats.connect(
        stack.process.nats_address, token=token, error_cb=on_error, allow_reconnect=False
    )
    try:
        yield nc, errors
    finally:
        await nc.close()


async def refused(stack: Stack, **credentials: Any) -> str:
    with pytest.raises(Exception) as caught:  # noqa: PT011 - nats-py raises its base error
        await nats.connect(
            stack.process.nats_address,
            allow_reconnect=False,
            max_reconnect_attempts=0,
            connect_timeout=5,
            **credentials,
        )
    return str(caught.value)


async def me(stack: Stack, token: str) -> dict[str, Any]:
    async with stack.client(key=token) as client:
        response = await client.get("/api/me")
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer


async def run(stack: Stack, user: str, workflow_id: str, inputs: dict[str, Any]) -> str:
    async with stack.client(user) as client:
        response = await client.post(
            "/api/executions", json={"workflow_id": workflow_id, "inputs": inputs}
        )
        assert response.status_code == 202, response.text
        run_id: str = response.json()["id"]
        return run_id


async def finished(stack: Stack, user: str, run_id: str) -> dict[str, Any]:
    async with stack.client(user) as client:
        response = await client.get(f"/api/executions/{run_id}/events")
        events = [
            json.loads(line[6:])
            for line in response.text.splitlines()
            if line.startswith("data: {")
        ]
    final: dict[str, Any] = events[-1]
    assert final["event"] == "workflow_finished"
    return final


async def test_anonymous_and_bad_tokens_are_refused(stack: Stack) -> None:
    assert "Authorization Violation" in await refused(stack)
    assert "Authorization Violation" in await refused(stack, token="not-a-token")
    expired = make_token(stack.secret, "alice", ttl_s=-60)
    assert "Authorization Violation" in await refused(stack, token=expired)
    assert "Authorization Violation" in await refused(stack, user="engine", password="guess")


async def test_a_revoked_key_stops_working_for_new_connections(stack: Stack) -> None:
    workflow_id = await stack.create_workflow("kim", GREET)
    async with stack.client("kim") as client:
        issued = (await client.post("/api/keys", json={"workflow_id": workflow_id})).json()
        async with as_subscriber(stack, issued["key"]):
            pass  # accepted while valid
        assert (await client.delete(f"/api/keys/{issued['id']}")).status_code == 204
    assert "Authorization Violation" in await refused(stack, token=issued["key"])


async def test_a_user_reads_its_own_events_and_no_one_elses(stack: Stack) -> None:
    alice, bob = f"alice-{uuid.uuid4().hex[:6]}", f"bob-{uuid.uuid4().hex[:6]}"
    mine = await stack.create_workflow(alice, GREET)
    theirs = await stack.create_workflow(bob, GREET)
    alice_token = stack.token(alice)
    prefix = (await me(stack, alice_token))["nats"]["subject_prefix"]
    bob_prefix = (await me(stack, stack.token(bob)))["nats"]["subject_prefix"]
    assert prefix == f"flowstream.events.{subjects.owner_token(alice)}"

    seen = Collected()
    async with as_subscriber(stack, alice_token) as (nc, errors):

        async def collect(msg: Any) -> None:
            seen.append(json.loads(msg.data))

        await nc.subscribe(f"{bob_prefix}.>", cb=collect)
        await nc.subscribe("flowstream.events.>", cb=collect)
        await errors.holding(2)
        assert all("permissions violation for subscription" in e for e in errors)
        # The connection stays usable for what is allowed.
        await nc.subscribe(f"{prefix}.>", cb=collect)
        await nc.flush()
        their_run = await run(stack, bob, theirs, {"name": "Bo"})
        my_run = await run(stack, alice, mine, {"name": "Al"})
        await seen.holding(1, lambda e: e["event"] == "workflow_finished")
        await finished(stack, bob, their_run)

    assert {e["workflow_run_id"] for e in seen} == {my_run}
    assert [e["seq"] for e in seen] == list(range(1, len(seen) + 1))


async def test_a_user_connection_can_publish_nothing(stack: Stack) -> None:
    user = f"mallory-{uuid.uuid4().hex[:6]}"
    victim = f"victim-{uuid.uuid4().hex[:6]}"
    workflow_id = await stack.create_workflow(victim, delay_then_template(1.0))
    victim_run = await run(stack, victim, workflow_id, {"name": "V"})
    address = subjects.RunAddress.of(victim, workflow_id, victim_run)
    forged_finish = {
        "event": "workflow_finished",
        "workflow_run_id": victim_run,
        "task_id": "x",
        "data": {"status": "succeeded", "outputs": {"message": "forged"}},
        "seq": 99,
    }
    attempts = {
        address.ingest_subject("workflow_finished"): json.dumps(forged_finish).encode(),
        address.event_subject("workflow_finished"): json.dumps(forged_finish).encode(),
        subjects.control_subject(victim_run): b'{"action": "cancel", "reason": "forged"}',
        subjects.submit_subject(str(uuid.uuid4()), 0, "o"): b"{}",
        f"$KV.{subjects.WORKFLOWS_BUCKET}.{workflow_id}": b"{}",
        f"$KV.{subjects.API_KEYS_BUCKET}.forged": b"{}",
        f"$KV.{subjects.CONTROL_BUCKET}.{victim_run}": b'{"action": "cancel"}',
    }
    async with as_subscriber(stack, stack.token(user)) as (nc, errors):
        for subject, payload in attempts.items():
            await nc.publish(subject, payload)
        with pytest.raises((nats.errors.NoRespondersError, nats.errors.TimeoutError)):
            await nc.request(
                subjects.history_subject("list"),
                json.dumps({"user_id": victim}).encode(),
                timeout=1,
            )
        await errors.holding(len(attempts) + 1, lambda e: "violation for publish" in e)

    final = await finished(stack, victim, victim_run)
    assert final["data"]["status"] == "succeeded"  # neither stopped nor rewritten
    assert final["data"]["outputs"] == {"message": "done"}


async def test_an_app_key_reads_only_its_own_workflow(stack: Stack) -> None:
    owner = f"ann-{uuid.uuid4().hex[:6]}"
    keyed = await stack.create_workflow(owner, GREET)
    other = await stack.create_workflow(owner, GREET)
    async with stack.client(owner) as client:
        key = (await client.post("/api/keys", json={"workflow_id": keyed})).json()["key"]
    prefix = (await me(stack, key))["nats"]["subject_prefix"]
    assert prefix.endswith(f".{keyed}")

    seen = Collected()
    async with as_subscriber(stack, key) as (nc, errors):

        async def collect(msg: Any) -> None:
            seen.append(json.loads(msg.data)["workflow_run_id"])

        owner_prefix = f"flowstream.events.{subjects.owner_token(owner)}"
        await nc.subscribe(f"{owner_prefix}.{other}.>", cb=collect)
        await errors.holding(1)
        await nc.subscribe(f"{prefix}.>", cb=collect)
        await nc.flush()
        await finished(stack, owner, await run(stack, owner, other, {"name": "B"}))
        keyed_run = await run(stack, owner, keyed, {"name": "A"})
        await finished(stack, owner, keyed_run)
        await seen.holding(5)
    assert set(seen) == {keyed_run}


@pytest.mark.parametrize(
    ("identity", "subject"),
    [
        (Identity.ENGINE, subjects.submit_subject("forged", 0, "o")),
        (Identity.ENGINE, f"$KV.{subjects.WORKFLOWS_BUCKET}.forged"),
        (Identity.ENGINE, subjects.control_subject("forged")),
        (Identity.HISTORY, subjects.RunAddress("o", "w", "r").ingest_subject("workflow_finished")),
        (Identity.HISTORY, subjects.submit_subject("forged", 0, "o")),
        (Identity.GATEWAY, subjects.RunAddress("o", "w", "r").ingest_subject("workflow_finished")),
        (Identity.GATEWAY, subjects.claim_subject("forged")),
    ],
)
async def test_each_service_identity_may_do_only_its_own_job(
    stack: Stack, identity: Identity, subject: str
) -> None:
    errors = Collected()

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    auth = stack.process.nats_auth
    assert auth is not None
    nc = await nats.connect(auth.url_for(identity, stack.process.nats_address), error_cb=on_error)
    try:
        await nc.publish(subject, b"{}")
        await errors.holding(1)
    finally:
        await nc.close()
    assert "permissions violation for publish" in errors[0]
