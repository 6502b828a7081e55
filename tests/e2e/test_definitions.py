"""Workflow definitions over real HTTP and NATS: versions, search, export/import, building a graph
step by step (drafts), validation naming the node, and isolation on every route."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import httpx
import nats
import pytest
from nats.js.errors import KeyDeletedError, KeyNotFoundError

from tests.e2e.conftest import Stack
from tests.support import GREET, grade, sse_frames

Json = dict[str, Any]


def _user() -> str:
    return f"defs-{uuid.uuid4().hex[:8]}"


def _greeting(template: str, name: str = "greet") -> Json:
    definition = copy.deepcopy(GREET)
    definition["name"] = name
    definition["nodes"][1]["config"]["template"] = template
    return definition


def _node(node_id: str, node_type: str, **config: Any) -> Json:
    return {"id": node_id, "type": node_type, "config": config}


def _assert_400_naming(response: httpx.Response, node_id: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "invalid_param" and body["status"] == 400
    assert f"`{node_id}`" in body["message"], body["message"]


async def _run(client: httpx.AsyncClient, workflow_id: str, name: str) -> httpx.Response:
    return await client.post(
        f"/api/workflow/{workflow_id}/execute",
        json={"inputs": {"name": name}, "response_mode": "blocking"},
    )


async def _answer(client: httpx.AsyncClient, workflow_id: str, name: str) -> Any:
    response = await _run(client, workflow_id, name)
    assert response.status_code == 200, response.text
    return response.json()["data"]["outputs"]["answer"]


async def _started_version(client: httpx.AsyncClient, workflow_id: str) -> Any:
    url = f"/api/workflow/{workflow_id}/execute/stream"
    async with client.stream("POST", url, json={"inputs": {"name": "Ada"}}) as response:
        assert response.status_code == 200
        frames = [frame async for frame in sse_frames(response)]
    started = frames[0].json()
    assert started["event"] == "workflow_started"
    return started["data"]["workflow_version"]


async def test_put_stores_a_new_version_and_keeps_the_old_ones(stack: Stack) -> None:
    user = _user()
    workflow_id = await stack.create_workflow(user, GREET)
    async with stack.client(user) as client:
        put = await client.put(
            f"/api/workflows/{workflow_id}", json=_greeting("Hi {{input.name}}.")
        )
        assert put.status_code == 200, put.text
        assert put.json()["version"] == 2 and put.json()["draft"] is False

        latest = (await client.get(f"/api/workflows/{workflow_id}")).json()
        first = (await client.get(f"/api/workflows/{workflow_id}", params={"version": 1})).json()
        assert latest["version"] == 2
        assert latest["definition"]["nodes"][1]["config"]["template"] == "Hi {{input.name}}."
        assert first["version"] == 1 and first["id"] == workflow_id
        assert first["definition"]["nodes"][1]["config"]["template"] == "Hello {{input.name}}!"

        versions = (await client.get(f"/api/workflows/{workflow_id}/versions")).json()
        assert versions["total"] == 2
        assert [
            (v["version"], v["name"], v["draft"], v["node_count"]) for v in versions["items"]
        ] == [
            (2, "greet", False, 3),
            (1, "greet", False, 3),
        ]
        assert all(isinstance(v["created_at"], int) for v in versions["items"])

        again = await client.put(
            f"/api/workflows/{workflow_id}", json=_greeting("Hi {{input.name}}.")
        )
        assert again.json()["version"] == 2, "the same definition again makes no new version"

        for version, status in [(3, 404), (0, 400), (-1, 400)]:
            response = await client.get(
                f"/api/workflows/{workflow_id}", params={"version": version}
            )
            assert response.status_code == status, (version, response.text)


async def test_an_invalid_put_answers_400_naming_the_node_and_stores_nothing(
    stack: Stack,
) -> None:
    user = _user()
    workflow_id = await stack.create_workflow(user, GREET)
    island = _greeting("Hi")
    island["nodes"].append({"id": "island", "type": "TEMPLATE", "config": {"template": "x"}})
    bad_ref = _greeting("Hi {{nowhere.text}}")
    async with stack.client(user) as client:
        _assert_400_naming(await client.put(f"/api/workflows/{workflow_id}", json=island), "island")
        _assert_400_naming(await client.put(f"/api/workflows/{workflow_id}", json=bad_ref), "greet")
        assert (await client.get(f"/api/workflows/{workflow_id}")).json()["version"] == 1


async def test_a_run_after_put_uses_the_new_version(stack: Stack) -> None:
    user = _user()
    workflow_id = await stack.create_workflow(user, GREET)
    async with stack.client(user) as client:
        assert await _answer(client, workflow_id, "Ada") == "Hello Ada!"
        assert await _started_version(client, workflow_id) == 1
        put = await client.put(
            f"/api/workflows/{workflow_id}", json=_greeting("Hi {{input.name}}.")
        )
        assert put.status_code == 200
        assert await _answer(client, workflow_id, "Ada") == "Hi Ada."
        assert await _started_version(client, workflow_id) == 2


async def test_export_then_import_gives_an_identical_definition(stack: Stack) -> None:
    user = _user()
    original = grade()
    original |= {"description": "grades a score", "tags": ["school", "demo"]}
    original["config"] = {"timeout": 60, "retry_count": 1}
    workflow_id = await stack.create_workflow(user, original)
    async with stack.client(user) as client:
        exported = await client.get(f"/api/workflows/{workflow_id}/export")
        assert exported.status_code == 200
        assert "attachment" in exported.headers["content-disposition"]
        definition = exported.json()
        assert definition["name"] == original["name"] and definition["tags"] == ["school", "demo"]
        assert {"from": "start", "to": "check", "type": "SEQUENCE"} in definition["connections"]
        assert "id" not in definition and "version" not in definition

        imported = await client.post("/api/workflows/import", json=definition)
        assert imported.status_code == 201, imported.text
        copy_id = imported.json()["id"]
        assert copy_id != workflow_id and imported.json()["version"] == 1
        again = (await client.get(f"/api/workflows/{copy_id}/export")).json()
        assert again == definition

        run = await client.post(
            f"/api/workflow/{copy_id}/execute",
            json={"inputs": {"score": 80, "verified": True}, "response_mode": "blocking"},
        )
        assert run.json()["data"]["outputs"] == {"result": "Passed with 80"}


async def test_export_of_an_old_version(stack: Stack) -> None:
    user = _user()
    workflow_id = await stack.create_workflow(user, GREET)
    async with stack.client(user) as client:
        await client.put(f"/api/workflows/{workflow_id}", json=_greeting("v2", name="renamed"))
        old = await client.get(f"/api/workflows/{workflow_id}/export", params={"version": 1})
        new = await client.get(f"/api/workflows/{workflow_id}/export")
    assert old.json()["name"] == "greet" and new.json()["name"] == "renamed"


START_ONLY: Json = {
    "name": "built step by step",
    "nodes": [
        {
            "id": "start",
            "type": "START",
            "config": {"inputs": [{"name": "name", "type": "string", "required": True}]},
        }
    ],
}


async def test_building_step_by_step_ends_in_a_runnable_workflow(stack: Stack) -> None:
    user = _user()
    async with stack.client(user) as client:
        refused = await client.post("/api/workflows", json=START_ONLY)
        assert refused.status_code == 400 and "END" in refused.json()["message"]

        created = await client.post("/api/workflows", params={"draft": "true"}, json=START_ONLY)
        assert created.status_code == 201, created.text
        workflow = created.json()
        workflow_id = workflow["id"]
        assert workflow["draft"] is True and "END" in workflow["problems"][0]

        steps: list[tuple[str, Json]] = [
            ("nodes", _node("greet", "TEMPLATE", template="Hi {{input.name}}")),
            ("nodes", _node("end", "END", outputs={"answer": "{{greet.text}}"})),
            ("connections", {"from": "start", "to": "greet"}),
            ("connections", {"from": "greet", "to": "end", "type": "SEQUENCE"}),
        ]
        for number, (kind, body) in enumerate(steps, start=2):
            step = await client.post(f"/api/workflows/{workflow_id}/{kind}", json=body)
            assert step.status_code == 201, (body, step.text)
            assert step.json()["version"] == number
            if number == 4:  # `end` is not connected yet: still a draft, and it says why
                assert step.json()["draft"] is True
                assert "`end`" in step.json()["problems"][0]
                draft = await _run(client, workflow_id, "Ada")
                assert draft.status_code == 400
                assert "draft" in draft.json()["message"] and "`end`" in draft.json()["message"]

        done = (await client.get(f"/api/workflows/{workflow_id}")).json()
        assert done["version"] == 5 and done["draft"] is False and done["problems"] == []
        assert await _answer(client, workflow_id, "Ada") == "Hi Ada"

        versions = (await client.get(f"/api/workflows/{workflow_id}/versions")).json()["items"]
        assert [(v["version"], v["draft"], v["node_count"]) for v in versions] == [
            (5, False, 3),
            (4, True, 3),
            (3, True, 3),
            (2, True, 2),
            (1, True, 1),
        ]
        earlier = await client.get(f"/api/workflows/{workflow_id}", params={"version": 3})
        assert earlier.json()["draft"] is True and earlier.json()["problems"]


async def test_adding_to_a_runnable_workflow_makes_a_draft_until_connected(stack: Stack) -> None:
    user = _user()
    workflow_id = await stack.create_workflow(user, GREET)
    async with stack.client(user) as client:
        added = await client.post(
            f"/api/workflows/{workflow_id}/nodes",
            json={"id": "later", "type": "DELAY", "config": {"seconds": 0}},
        )
        assert added.status_code == 201, added.text
        assert added.json()["draft"] is True and "`later`" in added.json()["problems"][0]
        listed = (await client.get("/api/workflows")).json()["items"]
        assert [(w["id"], w["version"], w["draft"]) for w in listed] == [(workflow_id, 2, True)]
        # The last runnable version is still there to read (and to run, by version).
        first = await client.get(f"/api/workflows/{workflow_id}", params={"version": 1})
        assert first.json()["draft"] is False

        for source, target in [("greet", "later"), ("later", "end")]:
            connected = await client.post(
                f"/api/workflows/{workflow_id}/connections", json={"from": source, "to": target}
            )
            assert connected.status_code == 201, connected.text
        assert connected.json()["draft"] is False and connected.json()["version"] == 4
        assert await _answer(client, workflow_id, "Bo") == "Hello Bo!"


@pytest.mark.parametrize(
    ("kind", "body", "names"),
    [
        ("nodes", _node("greet", "TEMPLATE", template="x"), "greet"),
        ("nodes", {"id": "tp", "type": "TELEPORT"}, "tp"),
        ("nodes", _node("t2", "TEMPLATE"), "t2"),
        ("nodes", _node("t3", "TEMPLATE", template="x", typo=1), "t3"),
        ("nodes", _node("bad", "TEMPLATE", template="{{ input.name >= }}"), "bad"),
        ("nodes", _node("cond", "CONDITION", condition="{{ input.name"), "cond"),
        ("nodes", {"id": "start2", "type": "START"}, "start2"),
        ("nodes", _node("input", "TEMPLATE", template="x"), "input"),
        ("connections", {"from": "greet", "to": "ghost"}, "ghost"),
        ("connections", {"from": "end", "to": "greet"}, "end"),
        ("connections", {"from": "greet", "to": "start"}, "start"),
        ("connections", {"from": "start", "to": "greet"}, "start"),
        ("connections", {"from": "greet", "to": "end", "type": "CONDITIONAL_TRUE"}, "greet"),
    ],
)
async def test_a_bad_step_answers_400_naming_the_node_and_stores_nothing(
    stack: Stack, kind: str, body: Json, names: str
) -> None:
    user = _user()
    workflow_id = await stack.create_workflow(user, GREET)
    async with stack.client(user) as client:
        _assert_400_naming(
            await client.post(f"/api/workflows/{workflow_id}/{kind}", json=body), names
        )
        assert (await client.get(f"/api/workflows/{workflow_id}")).json()["version"] == 1


async def test_malformed_step_bodies_answer_400_naming_the_field(stack: Stack) -> None:
    user = _user()
    workflow_id = await stack.create_workflow(user, GREET)
    async with stack.client(user) as client:
        for kind, body, field in [
            ("nodes", {"id": "has space", "type": "TEMPLATE"}, "id"),
            ("nodes", {"name": "no type"}, "type"),
            ("connections", {"from": "start"}, "to"),
            ("connections", {"from": "start", "to": "end", "type": "TELEPORT"}, "type"),
        ]:
            response = await client.post(f"/api/workflows/{workflow_id}/{kind}", json=body)
            assert response.status_code == 400, response.text
            assert response.json()["message"].startswith(field), response.text


async def test_search_by_tag_and_text_with_paging(stack: Stack) -> None:
    user = _user()
    specs = [
        ("Alpha one", "", ["x"]),
        ("alpha two", "", ["x", "y"]),
        ("beta", "mentions ALPHA in passing", ["y"]),
        ("gamma", "", []),
        ("ALPHA three", "", ["x"]),
    ]
    ids = []
    for name, description, tags in specs:
        definition = GREET | {"name": name, "description": description, "tags": tags}
        ids.append(await stack.create_workflow(user, definition))
    async with stack.client(user) as client:

        async def listed(**params: Any) -> Json:
            response = await client.get("/api/workflows", params=params)
            assert response.status_code == 200, response.text
            page: Json = response.json()
            return page

        everything = await listed(size=100)
        assert {w["id"] for w in everything["items"]} == set(ids) and everything["total"] == 5
        order = [w["id"] for w in everything["items"]]
        created = [w["created_at"] for w in everything["items"]]
        assert created == sorted(created, reverse=True), "newest first"
        alpha = await listed(q="alpha")
        assert {w["name"] for w in alpha["items"]} == {
            "Alpha one",
            "alpha two",
            "beta",
            "ALPHA three",
        }
        assert (await listed(q="ALPHA", tag="x"))["total"] == 3
        assert {w["name"] for w in (await listed(tag="y"))["items"]} == {"beta", "alpha two"}
        assert (await listed(q="passing", tag="x"))["total"] == 0
        assert (await listed(tag="nope"))["items"] == []

        pages = [await listed(size=2, page=n) for n in (1, 2, 3, 4)]
        assert [p["pages"] for p in pages] == [3, 3, 3, 3]
        assert [p["total"] for p in pages] == [5, 5, 5, 5]
        assert [w["id"] for p in pages for w in p["items"]] == order
        assert pages[3]["items"] == []
        assert (await client.get("/api/workflows", params={"size": 101})).status_code == 400
        assert (await client.get("/api/workflows", params={"page": 0})).status_code == 400

        # Versions are not workflows: a listing shows each workflow once, at its latest version.
        renamed = GREET | {"name": "alpha renamed", "tags": ["x"]}
        assert (await client.put(f"/api/workflows/{ids[0]}", json=renamed)).status_code == 200
        after = await listed(size=100)
        assert after["total"] == 5
        first = next(w for w in after["items"] if w["id"] == ids[0])
        assert first["version"] == 2 and first["name"] == "alpha renamed"


async def test_versions_live_under_their_own_keys_and_go_with_the_workflow(stack: Stack) -> None:
    user = _user()
    workflow_id = await stack.create_workflow(user, GREET)
    nc = await nats.connect(stack.nats_url)
    try:
        kv = await nc.jetstream().key_value("flowstream_workflows")
        async with stack.client(user) as client:
            for text in ("two", "three"):
                await client.put(f"/api/workflows/{workflow_id}", json=_greeting(text))
            keys = {workflow_id, f"{workflow_id}.v1", f"{workflow_id}.v2"}
            assert {k for k in await kv.keys() if k.startswith(workflow_id)} == keys
            # A version key is no workflow id.
            assert (await client.get(f"/api/workflows/{workflow_id}.v1")).status_code == 404
            assert (await client.delete(f"/api/workflows/{workflow_id}.v1")).status_code == 404

            assert (await client.delete(f"/api/workflows/{workflow_id}")).status_code == 204
            for url, params in [
                (f"/api/workflows/{workflow_id}", {"version": 1}),
                (f"/api/workflows/{workflow_id}/versions", {}),
                (f"/api/workflows/{workflow_id}/export", {"version": 2}),
            ]:
                assert (await client.get(url, params=params)).status_code == 404
        for key in keys:
            with pytest.raises((KeyNotFoundError, KeyDeletedError)):
                await kv.get(key)
    finally:
        await nc.close()


async def test_every_definition_route_is_scoped_to_the_caller(stack: Stack) -> None:
    owner, other = _user(), _user()
    workflow_id = await stack.create_workflow(owner, GREET)
    base = f"/api/workflows/{workflow_id}"
    node = {"id": "extra", "type": "TEMPLATE", "config": {"template": "x"}}
    reads: list[tuple[str, str, Json | None, Json]] = [
        ("GET", base, None, {"version": 1}),
        ("GET", f"{base}/versions", None, {}),
        ("GET", f"{base}/export", None, {}),
    ]
    writes: list[tuple[str, str, Json | None, Json]] = [
        ("PUT", base, _greeting("mine now"), {}),
        ("POST", f"{base}/nodes", node, {}),
        ("POST", f"{base}/connections", {"from": "start", "to": "end"}, {}),
    ]
    async with stack.client(other) as client:
        for method, url, body, params in reads + writes:
            response = await client.request(method, url, json=body, params=params)
            assert response.status_code == 404, (method, url, response.text)
            assert response.json()["code"] == "not_found"
        assert (await client.get("/api/workflows/bad*id")).status_code == 404
    async with stack.client(owner) as client:
        issued = await client.post("/api/keys", json={"workflow_id": workflow_id})
        key = issued.json()["key"]
    async with stack.client(key=key) as client:
        for method, url, body, params in reads:
            response = await client.request(method, url, json=body, params=params)
            assert response.status_code == 200, (method, url, response.text)
        for method, url, body, params in [
            *writes,
            ("POST", "/api/workflows/import", GREET, {}),
        ]:
            response = await client.request(method, url, json=body, params=params)
            assert response.status_code == 403, (method, url, response.text)
    async with stack.client(owner) as client:
        assert (await client.get(base)).json()["version"] == 1


async def test_an_older_version_can_still_be_run_by_number(stack: Stack) -> None:
    workflow_id = await stack.create_workflow("alice", GREET)
    changed = copy.deepcopy(GREET)
    changed["nodes"][1]["config"]["template"] = "Hi {{input.name}}!"
    async with stack.client("alice") as client:
        assert (await client.put(f"/api/workflows/{workflow_id}", json=changed)).status_code == 200

        async def run(**extra: Any) -> Any:
            body = {"inputs": {"name": "V"}, "response_mode": "blocking", **extra}
            return await client.post(f"/api/workflow/{workflow_id}/execute", json=body)

        assert (await run()).json()["data"]["outputs"] == {"answer": "Hi V!"}
        assert (await run(version=1)).json()["data"]["outputs"] == {"answer": "Hello V!"}
        missing = await run(version=99)
        assert missing.status_code == 404 and missing.json()["code"] == "not_found"
        started = await client.post(
            "/api/executions",
            json={"workflow_id": workflow_id, "inputs": {"name": "V"}, "version": 1},
        )
        assert started.json()["workflow_version"] == 1
