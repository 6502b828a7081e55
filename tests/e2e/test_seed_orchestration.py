"""The orchestration requests of the document that preceded flowstream (workflows, nodes,
connections, API management, execution), sent as a client of that document writes them, over
the whole stack. Each answers as docs/workflows.md and docs/api.md say."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Stack
from tests.e2e.peers import Peer, http_peer
from tests.e2e.seed_support import until_event
from tests.support import history_caught_up, read_run_log


@pytest.fixture(scope="module")
async def peer() -> AsyncIterator[Peer]:
    async with http_peer() as serving:
        yield serving


def _user() -> str:
    return f"seed-{uuid.uuid4().hex[:8]}"


async def _created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def _register_orders_api(client: httpx.AsyncClient, peer: Peer) -> dict[str, Any]:
    return await _created(
        await client.post(
            "/api/apis",
            json={
                "name": "orders",
                "description": "the order service",
                "base_url": peer.url,
                "method": "GET",
                "path": "/data/{order_id}",
                "headers": {"X-Client": "flowstream"},
            },
        )
    )


async def test_a_workflow_built_node_by_node_as_the_seed_builds_it(
    stack: Stack, peer: Peer
) -> None:
    async with stack.client(_user()) as client:
        api = await _register_orders_api(client, peer)
        assert api["required_parameters"] == ["order_id"]

        # The seed's create body: no nodes. A draft to build on.
        workflow = await _created(
            await client.post(
                "/api/workflows",
                json={
                    "name": "Order follow-up",
                    "description": "checks an order",
                    "version": "1.0",
                    "is_active": True,
                },
            )
        )
        workflow_id = workflow["id"]
        assert workflow["draft"] and workflow["version"] == 1
        assert workflow["definition"]["version_label"] == "1.0"
        base = f"/api/workflows/{workflow_id}"

        async def add(node: dict[str, Any]) -> dict[str, Any]:
            added = await _created(await client.post(f"{base}/nodes", json=node))
            result: dict[str, Any] = added["node"]
            return result

        start = await add(
            {
                "name": "Start",
                "node_type": "START",
                "config": {"inputs": [{"name": "order_id", "type": "string", "required": True}]},
                "position_x": 100,
                "position_y": 50,
                "description": "where orders come in",
            }
        )
        assert (start["id"], start["position_x"], start["description"]) == (
            "start",
            100,
            "where orders come in",
        )
        fetch = await add(
            {
                "name": "Fetch order",
                "node_type": "API_CALL",
                "config": {
                    "api_id": api["id"],
                    "parameters": {"order_id": "{{input.order_id}}"},
                    "output_mapping": {
                        "order_id": "response.data.id",
                        "order_status": "response.data.status",
                    },
                    "outputs": {"record": "{{response.data}}"},
                },
                "position_x": 300,
                "position_y": 50,
                "description": "asks the order service",
            }
        )
        assert fetch["id"] == "fetch_order"
        check = await add(
            {
                "name": "Is it a success",
                "node_type": "CONDITION",
                "config": {
                    "condition": "{{fetch_order.order_status}}.contains('success')",
                    "true_path": "Notify",
                    "false_path": "Give up",
                },
                "position_x": 500,
                "position_y": 50,
                "description": "",
            }
        )
        assert check["config"]["true_path"] == "Notify"  # not there yet: kept until it is
        await add(
            {
                "name": "Notify",
                "node_type": "TEMPLATE",
                "config": {"template": "Order {{fetch_order.order_id}} is fine"},
                "position_x": 700,
                "position_y": 0,
                "description": "",
            }
        )
        await add(
            {
                "name": "Give up",
                "node_type": "TEMPLATE",
                "config": {"template": "Order {{fetch_order.order_id}} failed"},
                "position_x": 700,
                "position_y": 100,
                "description": "",
            }
        )
        await add(
            {
                "name": "Done",
                "node_type": "END",
                "config": {
                    "outputs": {
                        "status": "{{fetch_order.order_status}}",
                        "id": "{{fetch_order.order_id}}",
                    }
                },
                "position_x": 900,
                "position_y": 50,
                "description": "",
            }
        )
        # The branch paths named nodes that now exist: they are the CONDITION's connections.
        current = (await client.get(base)).json()["definition"]
        branches = {
            (c["to"], c["type"]) for c in current["connections"] if c["from"] == check["id"]
        }
        assert branches == {("notify", "CONDITIONAL_TRUE"), ("give_up", "CONDITIONAL_FALSE")}

        async def connect(source: str, target: str, **extra: Any) -> dict[str, Any]:
            body = {
                "from_node_id": source,
                "to_node_id": target,
                "connection_type": "SEQUENCE",
                "condition": None,
                "config": {"label": f"{source} to {target}"},
                **extra,
            }
            added = await _created(await client.post(f"{base}/connections", json=body))
            result: dict[str, Any] = added["connection"]
            return {**result, "draft": added["draft"]}

        first = await connect("start", "fetch_order")
        assert first["id"] == "start-fetch_order" and first["config"] == {
            "label": "start to fetch_order"
        }
        await connect("fetch_order", "is_it_a_success")
        await connect("notify", "done")
        last = await connect("give_up", "done")
        assert last["draft"] is False  # complete: runnable

        # Edit one node, then another's position: each a new version.
        changed = await client.put(
            f"{base}/nodes/notify", json={"description": "tells the customer", "position_x": 720}
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["node"]["description"] == "tells the customer"
        assert changed.json()["node"]["config"] == {
            "template": "Order {{fetch_order.order_id}} is fine"
        }

        relabelled = await client.put(
            f"{base}/connections/notify-done",
            json={"connection_type": "SEQUENCE", "config": {"label": "then finish"}},
        )
        assert relabelled.status_code == 200, relabelled.text
        assert relabelled.json()["connection"] == {
            "id": "notify-done",
            "from": "notify",
            "to": "done",
            "type": "SEQUENCE",
            "config": {"label": "then finish"},
        }
        assert not relabelled.json()["draft"]

        # Seed 003's execute body, waiting for the result.
        answer = await client.post(
            f"{base}/execute",
            json={
                "execution_name": "order 42",
                "input_data": {"order_id": "42"},
                "config": {"async": False, "timeout": 60},
            },
        )
        assert answer.status_code == 200, answer.text
        data = answer.json()["data"]
        assert data["status"] == "succeeded"
        assert data["outputs"] == {"status": "success", "id": "42"}
        (call,) = peer.received("/data/42")
        assert call.method == "GET" and call.headers["x-client"] == "flowstream"
        events = await read_run_log(stack.nats_url, answer.json()["workflow_run_id"])
        finished = {
            e["data"]["node_id"]: e["data"] for e in events if e["event"] == "node_finished"
        }
        assert finished["fetch_order"]["outputs"]["record"] == {
            "id": "42",
            "status": "success",
            "received": None,
        }
        assert "give_up" not in finished and "notify" in finished

        # ... and asynchronously: 202 at once, the run goes on.
        started = await client.post(
            f"{base}/execute",
            json={"execution_name": "order fail-7", "input_data": {"order_id": "fail-7"},
                  "config": {"async": True, "timeout": 60}},
        )  # fmt: skip
        assert started.status_code == 202, started.text
        run_id = started.json()["id"]
        events = await read_run_log(stack.nats_url, run_id)
        ran = [e["data"]["node_id"] for e in events if e["event"] == "node_started"]
        assert "give_up" in ran and "notify" not in ran
        await history_caught_up(stack.nats_url)
        detail = (await client.get(f"/api/executions/{run_id}")).json()
        assert detail["execution_name"] == "order fail-7" and detail["status"] == "succeeded"

        # Remove a branch: the CONDITION lacks one, so the version is a draft that cannot run.
        removed = await client.delete(f"{base}/nodes/give_up")
        assert removed.status_code == 200 and removed.json()["draft"]
        assert not any(
            "give_up" in (c["from"], c["to"]) for c in removed.json()["definition"]["connections"]
        )
        refused = await client.post(f"{base}/execute", json={"input_data": {"order_id": "1"}})
        assert refused.status_code == 400 and "draft" in refused.json()["message"]
        gone = await client.delete(f"{base}/connections/start-fetch_order")
        assert gone.status_code == 200
        assert all(c["from"] != "start" for c in gone.json()["definition"]["connections"])
        missing = await client.delete(f"{base}/nodes/nowhere")
        assert missing.status_code == 404 and missing.json()["code"] == "not_found"


async def test_a_whole_seed_definition_with_conditional_connections_runs(stack: Stack) -> None:
    user = _user()
    async with stack.client(user) as client:
        created = await _created(
            await client.post(
                "/api/workflows",
                json={
                    "name": "Routing",
                    "description": "",
                    "version": "2.3",
                    "is_active": True,
                    "nodes": [
                        {"name": "Start", "node_type": "START", "config": {"inputs": [
                            {"name": "amount", "type": "number", "required": True}]},
                         "position_x": 0, "position_y": 0, "description": ""},
                        {"name": "Big", "node_type": "TEMPLATE",
                         "config": {"template": "big {{input.amount}}"},
                         "position_x": 200, "position_y": -50, "description": ""},
                        {"name": "Small", "node_type": "TEMPLATE",
                         "config": {"template": "small {{input.amount}}"},
                         "position_x": 200, "position_y": 50, "description": ""},
                        {"name": "End", "node_type": "END",
                         "config": {"outputs": {"amount": "{{input.amount}}"}},
                         "position_x": 400, "position_y": 0, "description": ""},
                    ],
                    "connections": [
                        {"from_node_id": "start", "to_node_id": "big",
                         "connection_type": "CONDITIONAL", "condition": "{{input.amount}} > 100",
                         "config": {}},
                        {"from_node_id": "start", "to_node_id": "small",
                         "connection_type": "CONDITIONAL", "condition": "{{input.amount}} <= 100",
                         "config": {}},
                        {"from_node_id": "big", "to_node_id": "end",
                         "connection_type": "SEQUENCE", "condition": None, "config": {}},
                        {"from_node_id": "small", "to_node_id": "end",
                         "connection_type": "SEQUENCE", "condition": None, "config": {}},
                    ],
                },
            )
        )  # fmt: skip
        assert not created["draft"] and created["definition"]["version_label"] == "2.3"
        for amount, ran, skipped in ((150, "big", "small"), (20, "small", "big")):
            answer = await client.post(
                "/api/executions",
                json={"workflow_id": created["id"], "input_data": {"amount": amount},
                      "config": {"async": False}},
            )  # fmt: skip
            assert answer.status_code == 200, answer.text
            events = await read_run_log(stack.nats_url, answer.json()["workflow_run_id"])
            started = {e["data"]["node_id"] for e in events if e["event"] == "node_started"}
            assert ran in started and skipped not in started
        bad = await client.post(
            f"/api/workflows/{created['id']}/connections",
            json={"from_node_id": "big", "to_node_id": "small", "connection_type": "CONDITIONAL"},
        )
        assert bad.status_code == 400 and "condition" in bad.json()["message"]


async def test_an_inactive_workflow_refuses_runs_on_every_route(stack: Stack) -> None:
    user = _user()
    async with stack.client(user) as client:
        created = await _created(
            await client.post(
                "/api/workflows",
                json={
                    "name": "Sleeping",
                    "version": "1.0",
                    "is_active": False,
                    "nodes": [
                        {"name": "Start", "node_type": "START"},
                        {"name": "End", "node_type": "END"},
                    ],
                    "connections": [{"from_node_id": "start", "to_node_id": "end"}],
                },
            )
        )
        workflow_id = created["id"]
        for path, body in (
            (f"/api/workflows/{workflow_id}/execute", {"input_data": {}}),
            (f"/api/workflow/{workflow_id}/execute", {"inputs": {}, "response_mode": "blocking"}),
            ("/api/executions", {"workflow_id": workflow_id, "inputs": {}}),
        ):
            refused = await client.post(path, json=body)
            assert refused.status_code == 409, (path, refused.text)
            assert refused.json()["code"] == "conflict" and "inactive" in refused.json()["message"]
        # The seed's update body: only the workflow's own fields; the graph stays.
        activated = await client.put(f"/api/workflows/{workflow_id}", json={"is_active": True})
        assert activated.status_code == 200, activated.text
        assert (
            activated.json()["version"] == 2 and len(activated.json()["definition"]["nodes"]) == 2
        )
        ran = await client.post(
            f"/api/workflows/{workflow_id}/execute", json={"config": {"async": False}}
        )
        assert ran.status_code == 200 and ran.json()["data"]["status"] == "succeeded"
        # An older version of a workflow that is now inactive does not run either.
        await client.put(f"/api/workflows/{workflow_id}", json={"is_active": False})
        old = await client.post(
            "/api/executions", json={"workflow_id": workflow_id, "version": 2, "inputs": {}}
        )
        assert old.status_code == 409


async def test_method_calls_in_conditions_run_or_are_refused_at_once(stack: Stack) -> None:
    user = _user()

    def checking(condition: str) -> dict[str, Any]:
        return {
            "name": f"check-{uuid.uuid4().hex[:6]}",
            "nodes": [
                {"name": "Start", "node_type": "START",
                 "config": {"inputs": [{"name": "x", "type": "string"}]}},
                {"name": "Check", "node_type": "CONDITION",
                 "config": {"condition": condition, "true_path": "Yes", "false_path": "No"}},
                {"name": "Yes", "node_type": "TEMPLATE", "config": {"template": "yes"}},
                {"name": "No", "node_type": "TEMPLATE", "config": {"template": "no"}},
                {"name": "End", "node_type": "END", "config": {"outputs": {"x": "{{input.x}}"}}},
            ],
            "connections": [
                {"from_node_id": "start", "to_node_id": "check"},
                {"from_node_id": "yes", "to_node_id": "end"},
                {"from_node_id": "no", "to_node_id": "end"},
            ],
        }  # fmt: skip

    async with stack.client(user) as client:
        accepted = await _created(
            await client.post("/api/workflows", json=checking("{{input.x}}.contains('success')"))
        )
        for given, branch in (("a success", "yes"), ("a failure", "no")):
            answer = await client.post(
                f"/api/workflows/{accepted['id']}/execute",
                json={"input_data": {"x": given}, "config": {"async": False}},
            )
            assert answer.json()["data"]["status"] == "succeeded", answer.text
            events = await read_run_log(stack.nats_url, answer.json()["workflow_run_id"])
            assert branch in {e["data"]["node_id"] for e in events if e["event"] == "node_started"}
        refused = await client.post("/api/workflows", json=checking("{{input.x}}.explode()"))
        assert refused.status_code == 400
        assert "node `check`" in refused.json()["message"]
        assert "cannot be called" in refused.json()["message"]


async def test_api_management_and_what_a_run_takes_with_it(stack: Stack, peer: Peer) -> None:
    user = _user()
    async with stack.client(user) as client:
        api = await _register_orders_api(client, peer)
        listed = (await client.get("/api/apis")).json()
        assert [a["id"] for a in listed["items"]] == [api["id"]] and listed["total"] == 1
        assert (await client.get(f"/api/apis/{api['id']}")).json()["name"] == "orders"
        async with stack.client(_user()) as stranger:
            assert (await stranger.get(f"/api/apis/{api['id']}")).status_code == 404
        bad = await client.post(
            "/api/apis", json={"name": "x", "base_url": "ftp://files", "path": "nope"}
        )
        assert bad.status_code == 400 and bad.json()["message"].startswith("base_url")
        secret = await client.post(
            "/api/apis",
            json={"name": "x", "base_url": peer.url, "headers": {"Authorization": "Bearer sk-1"}},
        )
        assert secret.status_code == 400 and "credential" in secret.json()["message"]
        unknown = await client.post(
            "/api/apis", json={"name": "x", "base_url": peer.url, "credential": "nope"}
        )
        assert unknown.status_code == 400 and unknown.json()["message"].startswith("credential")

        # An API that authenticates with a stored credential: the run sends it, never shows it.
        stored = await client.post(
            "/api/credentials", json={"name": "echo-token", "value": "tok-271828"}
        )
        assert stored.status_code == 201, stored.text
        echo_api = await _created(
            await client.post(
                "/api/apis",
                json={"name": "echo", "base_url": peer.url, "method": "POST",
                      "path": "/echo/{key}", "credential": "echo-token"},
            )
        )  # fmt: skip
        key = f"cred-{uuid.uuid4().hex[:6]}"
        echoing = await _created(
            await client.post(
                "/api/workflows",
                json={
                    "name": f"echo-{key}",
                    "nodes": [
                        {"name": "Start", "node_type": "START"},
                        {"name": "Call", "node_type": "API_CALL",
                         "config": {"api_id": echo_api["id"], "parameters": {"key": key},
                                    "output_mapping": {"method": "method"}}},
                        {"name": "End", "node_type": "END",
                         "config": {"outputs": {"method": "{{call.method}}"}}},
                    ],
                    "connections": [
                        {"from_node_id": "start", "to_node_id": "call"},
                        {"from_node_id": "call", "to_node_id": "end"},
                    ],
                },
            )
        )  # fmt: skip
        called = await client.post(
            f"/api/workflows/{echoing['id']}/execute", json={"config": {"async": False}}
        )
        assert called.json()["data"]["outputs"] == {"method": "POST"}, called.text
        (sent,) = peer.received(f"/echo/{key}")
        assert sent.headers["authorization"] == "Bearer tok-271828"
        log = await read_run_log(stack.nats_url, called.json()["workflow_run_id"])
        assert "tok-271828" not in json.dumps(log)

        def calling(parameters: dict[str, Any], api_id: str = api["id"]) -> dict[str, Any]:
            return {
                "name": f"calls-{uuid.uuid4().hex[:6]}",
                "nodes": [
                    {"name": "Start", "node_type": "START",
                     "config": {"inputs": [{"name": "order", "type": "string"}]}},
                    {"name": "Fetch", "node_type": "API_CALL",
                     "config": {"api_id": api_id, "parameters": parameters,
                                "output_mapping": {"status": "data.status"}}},
                    {"name": "End", "node_type": "END",
                     "config": {"outputs": {"status": "{{fetch.status}}"}}},
                ],
                "connections": [
                    {"from_node_id": "start", "to_node_id": "fetch"},
                    {"from_node_id": "fetch", "to_node_id": "end"},
                ],
            }  # fmt: skip

        missing = await client.post("/api/workflows", json=calling({}))
        assert missing.status_code == 400 and "needs `order_id`" in missing.json()["message"]
        unknown = await client.post("/api/workflows", json=calling({"order_id": "1"}, "no-such"))
        assert unknown.status_code == 400 and "no API `no-such`" in unknown.json()["message"]
        workflow = await _created(
            await client.post("/api/workflows", json=calling({"order_id": "{{input.order}}"}))
        )
        key = f"snap-{uuid.uuid4().hex[:6]}"
        # A run paused before its API_CALL, then the API changes: the run keeps what it had.
        paused = await client.post(
            "/api/executions",
            json={"workflow_id": workflow["id"], "inputs": {"order": key},
                  "debug": {"breakpoints": ["fetch"]}},
        )  # fmt: skip
        assert paused.status_code == 202, paused.text
        run_id = paused.json()["id"]
        await until_event(client, run_id, "workflow_paused")
        changed = await client.put(
            f"/api/apis/{api['id']}",
            json={"name": "orders", "base_url": peer.url, "path": "/data/v2-{order_id}"},
        )
        assert changed.status_code == 200 and changed.json()["path"] == "/data/v2-{order_id}"
        resumed = await client.put(f"/api/executions/{run_id}", json={"status": "running"})
        assert resumed.status_code == 202, resumed.text
        events = await read_run_log(stack.nats_url, run_id)
        assert events[-1]["data"]["status"] == "succeeded"
        assert events[-1]["data"]["outputs"] == {"status": "success"}
        assert peer.received(f"/data/{key}") and not peer.received(f"/data/v2-{key}")
        # A run submitted now uses the new settings.
        later = await client.post(
            f"/api/workflows/{workflow['id']}/execute",
            json={"input_data": {"order": key}, "config": {"async": False}},
        )
        assert later.json()["data"]["status"] == "succeeded", later.text
        assert peer.received(f"/data/v2-{key}")
        # Deleted, the API keeps the workflow from running until it is back.
        assert (await client.delete(f"/api/apis/{api['id']}")).status_code == 204
        refused = await client.post(
            f"/api/workflows/{workflow['id']}/execute", json={"input_data": {"order": key}}
        )
        assert refused.status_code == 400 and "does not exist" in refused.json()["message"]
        assert (await client.get(f"/api/apis/{api['id']}")).status_code == 404
