"""The workflow store without NATS: the key scheme, drafts, and what a step may leave incomplete.

The bucket is an in-memory stand-in with the three calls the cache makes; the real bucket is
exercised end to end by tests/e2e/test_definitions.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import pytest
from flowstream_gateway.apis import ApiRecord, ApiStore
from flowstream_gateway.credentials import CredentialStore
from flowstream_gateway.errors import ApiError
from flowstream_gateway.kv_cache import KvCache
from flowstream_gateway.workflow_checks import WorkflowLimits, assess, check_draft
from flowstream_gateway.workflows import WorkflowRecord, WorkflowStore
from flowstream_shared.credentials import (
    CredentialRecord,
    Sealer,
    generate_private_key,
    public_key_of,
)
from flowstream_shared.workflow import Connection, Node, WorkflowDefinition
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from tests.unit.builders import GREET, chain, definition, end, field, node, start, template


@dataclass
class _Entry:
    value: bytes
    key: str = ""


class _Watcher:
    def __init__(self, entries: list[_Entry]) -> None:
        self._entries: list[_Entry | None] = [*entries, None]

    async def updates(self, **options: Any) -> _Entry | None:
        return self._entries.pop(0)

    async def stop(self) -> None:
        return None


class _Bucket:
    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    async def watch(self, pattern: str, **options: Any) -> _Watcher:
        """The subset of KV patterns the store uses: `<id>.*`."""
        prefix = pattern.removesuffix("*")
        found = [_Entry(b"", key) for key in self.data if key.startswith(prefix)]
        return _Watcher([e for e in found if "." not in e.key[len(prefix) :]])

    async def put(self, key: str, value: bytes) -> int:
        self.data[key] = value
        return len(self.data)

    async def create(self, key: str, value: bytes) -> int:
        if key in self.data:
            raise KeyWrongLastSequenceError
        return await self.put(key, value)

    async def get(self, key: str) -> _Entry:
        if key not in self.data:
            raise KeyNotFoundError
        return _Entry(self.data[key])

    async def delete(self, key: str) -> bool:
        self.data.pop(key, None)
        return True


def credential_store() -> CredentialStore:
    cache = KvCache(cast(KeyValue, _Bucket()), CredentialRecord.model_validate_json)
    return CredentialStore(cache, Sealer(public_key_of(generate_private_key())))


def _store(credentials: CredentialStore | None = None) -> tuple[WorkflowStore, _Bucket]:
    bucket = _Bucket()
    cache = KvCache(cast(KeyValue, bucket), WorkflowRecord.model_validate_json, mirrored="*")
    credentials = credentials or credential_store()
    apis = ApiStore(KvCache(cast(KeyValue, _Bucket()), ApiRecord.model_validate_json), credentials)
    return WorkflowStore(cache, credentials, apis), bucket


def _rejection(call: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()
    assert caught.value.status == 400 and caught.value.code == "invalid_param"
    return caught.value


GREET_DEF = WorkflowDefinition.model_validate(GREET)
START_ONLY = definition([start(field("name"))], [])


async def test_versions_are_stored_under_their_own_keys_and_listed_once() -> None:
    store, bucket = _store()
    created = await store.create("alice", GREET_DEF)
    renamed = GREET_DEF.model_copy(update={"name": "renamed"})
    second = await store.replace("alice", created.id, renamed)

    assert set(bucket.data) == {created.id, f"{created.id}.v1"}
    assert second.version == 2 and second.created_at == created.created_at
    assert (await store.get("alice", created.id, 1)).definition.name == "greet"
    assert [r.version for r in (await store.versions("alice", created.id))[0]] == [2, 1]
    assert [(r.id, r.version) for r in store.search("alice", None, None)] == [(created.id, 2)]
    assert await store.replace("alice", created.id, renamed) == second  # PUT is idempotent

    await store.delete("alice", created.id)
    assert bucket.data == {}


async def test_a_version_key_is_no_workflow_and_other_users_see_nothing() -> None:
    store, _ = _store()
    created = await store.create("alice", GREET_DEF)
    await store.replace("alice", created.id, GREET_DEF.model_copy(update={"name": "v2"}))
    for user, workflow_id, version in [
        ("alice", f"{created.id}.v1", None),
        ("alice", "not a key*", None),
        ("alice", created.id, 3),
        ("bob", created.id, None),
        ("bob", created.id, 1),
    ]:
        with pytest.raises(ApiError) as caught:
            await store.get(user, workflow_id, version)
        assert caught.value.status == 404


async def test_steps_make_drafts_until_the_graph_is_complete() -> None:
    store, _ = _store()
    record = await store.create("alice", START_ONLY, allow_draft=True)
    assert record.draft and "END" in record.problems[0]
    steps: list[Node | Connection] = [
        Node.model_validate(template("greet", "Hi {{input.name}}")),
        Node.model_validate(end(answer="{{greet.text}}")),
        *(Connection.model_validate(c) for c in chain("start", "greet", "end")),
    ]
    for step in steps:
        if isinstance(step, Node):
            record = await store.add_node("alice", record.id, step)
        else:
            record = await store.add_connection("alice", record.id, step)
    assert record.version == 5 and not record.draft and record.problems == []
    assert record.snapshot().version == 5


def test_a_draft_never_becomes_a_run() -> None:
    draft = WorkflowRecord(
        id="wf",
        user_id="alice",
        version=3,
        definition=START_ONLY,
        created_at=0,
        updated_at=0,
        problems=["a workflow needs an END node"],
    )
    error = _rejection(draft.snapshot)
    assert "version 3 is a draft" in error.message and "END" in error.message


def test_records_written_before_drafts_existed_are_runnable() -> None:
    legacy = WorkflowRecord.model_validate(
        {
            "id": "wf",
            "user_id": "a",
            "version": 1,
            "definition": GREET,
            "created_at": 0,
            "updated_at": 0,
        }
    )
    assert not legacy.draft and legacy.snapshot().version == 1


def test_full_writes_are_strict_unless_a_draft_is_asked_for() -> None:
    assert "END" in _rejection(lambda: assess(START_ONLY, allow_draft=False)).message
    assert assess(START_ONLY, allow_draft=True) == ["a workflow needs an END node"]
    assert assess(GREET_DEF, allow_draft=False) == []


@pytest.mark.parametrize(
    ("nodes", "connections", "names"),
    [
        ([start(), template("a", "x"), template("a", "y")], [], "`a`: duplicate node id"),
        ([start(), node("tp", "TELEPORT")], [], "`tp`: unknown node type"),
        ([start(), node("t", "TEMPLATE")], [], "`t`: config.template"),
        ([start(), template("t", "{{ input.x >= }}")], [], "`t`: invalid template"),
        ([start(), start(node_id="again")], [], "`again`"),
        ([start(), template("t", "x")], chain("start", "ghost"), "`ghost`"),
        ([start(), template("t", "x")], chain("t", "start"), "`start`: START"),
        ([start(), end()], [*chain("start", "end"), *chain("start", "end")], "`start`: duplicate"),
    ],
)
def test_a_draft_must_still_be_sound_node_by_node(
    nodes: list[dict[str, Any]], connections: list[dict[str, Any]], names: str
) -> None:
    assert names in _rejection(lambda: check_draft(definition(nodes, connections))).message


def test_a_draft_may_be_incomplete() -> None:
    check_draft(definition([start(), template("island", "{{nowhere.text}}")], []))


async def test_only_the_latest_versions_are_kept_and_older_ones_say_they_were_pruned() -> None:
    bucket = _Bucket()
    cache = KvCache(cast(KeyValue, bucket), WorkflowRecord.model_validate_json, mirrored="*")
    credentials = credential_store()
    apis = ApiStore(KvCache(cast(KeyValue, _Bucket()), ApiRecord.model_validate_json), credentials)
    store = WorkflowStore(cache, credentials, apis, WorkflowLimits(max_versions=3))
    created = await store.create("alice", GREET_DEF)
    for n in range(2, 7):
        await store.replace("alice", created.id, GREET_DEF.model_copy(update={"name": f"v{n}"}))

    assert set(bucket.data) == {created.id, f"{created.id}.v5", f"{created.id}.v4"}
    records, total = await store.versions("alice", created.id)
    assert total == 3 and [r.version for r in records] == [6, 5, 4]
    assert (await store.get("alice", created.id, 4)).definition.name == "v4"
    with pytest.raises(ApiError) as caught:
        await store.get("alice", created.id, 3)
    assert caught.value.status == 404 and "pruned" in caught.value.message
    # Superseded versions are read from the bucket, never kept in memory.
    assert [key for key, _ in cache.items()] == [created.id]

    await store.delete("alice", created.id)
    assert bucket.data == {}


async def test_a_page_of_versions_reads_only_that_page() -> None:
    store, bucket = _store()
    created = await store.create("alice", GREET_DEF)
    for n in range(2, 6):
        await store.replace("alice", created.id, GREET_DEF.model_copy(update={"name": f"v{n}"}))
    reads: list[str] = []
    original_get = bucket.get

    async def counting_get(key: str) -> _Entry:
        reads.append(key)
        return await original_get(key)

    bucket.get = counting_get  # type: ignore[method-assign]
    records, total = await store.versions("alice", created.id, page=2, size=2)
    assert total == 5 and [r.version for r in records] == [3, 2]
    assert reads == [f"{created.id}.v3", f"{created.id}.v2"]


def test_a_draft_may_have_no_start_yet() -> None:
    # A workflow built step by step may be created empty and get its START later.
    check_draft(definition([], []))
    check_draft(definition([template("t", "x")], []))
    assert assess(definition([template("t", "x")], []), allow_draft=True) == [
        "a workflow needs a START node"
    ]
