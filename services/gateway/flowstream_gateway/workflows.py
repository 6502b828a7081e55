"""Workflow definitions and their versions, persisted in the `flowstream_workflows` KV bucket.

Storage. The latest version of a workflow is the record under key `<id>`, so whatever needs "the
workflow" (running it, issuing a key, listing) reads one key, as before versions existed. When a
write supersedes version N, the outgoing record is first copied to `<id>.v<N>`, never written
again; then the new record replaces `<id>`. So version N lives under `<id>` while it is the latest
and under `<id>.v<N>` once superseded: the latest is never stored twice, and records written before
versions existed need no migration. Listing skips version keys (a key that is not its record's id).
Deleting removes `<id>` first (the workflow is gone at once), then the version keys.

Writes to one workflow through one replica are serialised by a lock of that workflow. The cache
offers no compare-and-set, so two replicas writing the same workflow at the same instant can
still lose one of the two writes.

Limits. A definition is checked against the size and count limits first (`WorkflowLimits`), then
validated, in a worker thread: a large definition takes the loop no time. Only the latest
`max_versions` versions are kept: the write that makes version N removes version
N - `max_versions`, and reading an older version answers 404 saying it was pruned. Only latest
versions are mirrored in memory (`KvCache(mirrored="*")`); older ones are read from KV.

Drafts. A full definition (create, replace, import) must pass `check_definition` unless the caller
asks for a draft. Building step by step (add, change or remove a node or a connection, or create
a workflow without nodes) always may leave a draft: each step must be sound on its own
(`check_draft`), and whatever the whole graph still lacks is kept as the version's `problems`.
A draft is stored and readable but never runs.

Running. A workflow whose latest version says `is_active: false` refuses runs (409), whichever
version is asked for. The registry APIs its API_CALL nodes name are looked up whenever a record
is read (a local copy: no round trip) and travel in the run's snapshot; one that no longer
exists keeps the workflow from running (400) until it is registered again or the node changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flowstream_shared.apis import ApiSnapshot, missing_parameters
from flowstream_shared.commands import WorkflowSnapshot
from flowstream_shared.workflow import (
    ApiCallConfig,
    Connection,
    Node,
    NodeType,
    WorkflowDefinition,
)
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from flowstream_gateway import workflow_edits as edits
from flowstream_gateway.apis import ApiStore
from flowstream_gateway.credentials import CredentialStore
from flowstream_gateway.definition_secrets import restore_secrets
from flowstream_gateway.errors import ApiError, invalid_param, not_found
from flowstream_gateway.kv_cache import KvCache
from flowstream_gateway.workflow_checks import (
    WorkflowLimits,
    assess,
    check_definition,
    check_draft,
)

__all__ = ["WorkflowRecord", "WorkflowStore", "assess", "check_definition", "check_draft"]

# Ids are UUIDs; anything else (a version key, a character KV keys refuse) is no workflow.
_WORKFLOW_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class WorkflowRecord(BaseModel):
    """One version of a workflow. `updated_at` is when this version was written."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    user_id: str
    version: int
    definition: WorkflowDefinition
    created_at: int
    updated_at: int
    # Why this version cannot run yet (each naming the node); empty for a runnable version.
    problems: list[str] = Field(default_factory=list)
    # Set when read (`WorkflowStore.get`), never stored: whether the workflow (its latest
    # version) is active, the registry APIs it uses, and why one of them cannot be used.
    _active: bool = PrivateAttr(default=True)
    _apis: dict[str, ApiSnapshot] = PrivateAttr(default_factory=dict)
    _api_problem: str | None = PrivateAttr(default=None)

    @property
    def draft(self) -> bool:
        return bool(self.problems)

    def require_runnable(self) -> None:
        """An inactive workflow answers a 409, a draft or a missing API a 400, before anything
        is queued."""
        if not (self._active and self.definition.is_active):
            raise ApiError(
                409,
                "conflict",
                f"workflow {self.id} is inactive; set `is_active: true` to run it again",
            )
        if self.problems:
            raise invalid_param(
                f"workflow {self.id} version {self.version} is a draft and cannot run: "
                f"{self.problems[0]}"
            )
        if self._api_problem:
            raise invalid_param(f"workflow {self.id} cannot run: {self._api_problem}")

    def snapshot(self) -> WorkflowSnapshot:
        self.require_runnable()  # a draft never becomes a run, whichever route asks
        return WorkflowSnapshot(
            workflow_id=self.id, version=self.version, definition=self.definition, apis=self._apis
        )


def _version_key(workflow_id: str, version: int) -> str:
    return f"{workflow_id}.v{version}"


def _api_calls(definition: WorkflowDefinition) -> list[tuple[Node, ApiCallConfig]]:
    """The API_CALL nodes that name a registry API (configs that do not parse are skipped)."""
    found: list[tuple[Node, ApiCallConfig]] = []
    for node in definition.nodes:
        if node.type == NodeType.API_CALL and node.config.get("api_id") is not None:
            try:
                found.append((node, ApiCallConfig.model_validate(node.config)))
            except ValidationError:
                continue
    return found


class WorkflowStore:
    def __init__(
        self,
        cache: KvCache[WorkflowRecord],
        credentials: CredentialStore,
        apis: ApiStore,
        limits: WorkflowLimits | None = None,
    ) -> None:
        self._cache = cache
        self._credentials = credentials
        self._apis = apis
        self.limits = limits or WorkflowLimits()
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        # Validation is CPU work: at most two definitions at once, never on the event loop.
        self._validation = ThreadPoolExecutor(max_workers=2, thread_name_prefix="validate")

    async def _assess(self, definition: WorkflowDefinition, allow_draft: bool) -> list[str]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._validation, assess, definition, allow_draft, self.limits
        )

    @contextlib.asynccontextmanager
    async def _writing(self, workflow_id: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(workflow_id, (asyncio.Lock(), 0))
        self._locks[workflow_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[workflow_id]
            if users == 1:
                del self._locks[workflow_id]
            else:
                self._locks[workflow_id] = (lock, users - 1)

    def _oldest_kept(self, latest: WorkflowRecord) -> int:
        return max(1, latest.version - self.limits.max_versions + 1)

    async def _secrets_resolved(
        self, user_id: str, definition: WorkflowDefinition
    ) -> WorkflowDefinition:
        """Masked values put back (see definition_secrets), credentials named by nodes checked."""

        async def load(workflow_id: str, version: int) -> WorkflowDefinition:
            return (await self.get(user_id, workflow_id, version)).definition

        definition = await restore_secrets(definition, load)
        await self._credentials.check_references(user_id, definition)
        return definition

    async def get(
        self, user_id: str, workflow_id: str, version: int | None = None
    ) -> WorkflowRecord:
        """The caller's workflow at `version` (the latest when None); another user's id answers
        exactly like an unknown one. The record may be a draft, inactive, or use an API that
        is gone: see `require_runnable`."""
        record = await self._latest(user_id, workflow_id)
        chosen = record
        if version is not None and 1 <= version < self._oldest_kept(record):
            raise ApiError(
                404,
                "not_found",
                f"version {version} of workflow {workflow_id} was pruned: only the latest "
                f"{self.limits.max_versions} versions are kept",
            )
        if version is not None and version != record.version:
            older = None
            if 1 <= version < record.version:
                older = await self._cache.get(_version_key(workflow_id, version))
            if older is None:
                raise not_found(f"version {version} of workflow {workflow_id}")
            chosen = older
        return await self._for_running(chosen, active=record.definition.is_active)

    async def _latest(self, user_id: str, workflow_id: str) -> WorkflowRecord:
        record = await self._cache.get(workflow_id) if _WORKFLOW_ID.match(workflow_id) else None
        if record is None or record.user_id != user_id or record.id != workflow_id:
            raise not_found(f"workflow {workflow_id}")
        return record

    async def _for_running(self, record: WorkflowRecord, active: bool) -> WorkflowRecord:
        """A copy with what running it needs: whether it is active, the APIs it names."""
        copy = record.model_copy()
        copy._active = active
        for node, config in _api_calls(record.definition):
            assert config.api_id is not None
            api = await self._apis.find(record.user_id, config.api_id)
            if api is None:
                copy._api_problem = f"node `{node.id}`: API `{config.api_id}` does not exist"
                break
            missing = missing_parameters(api, config.parameters)
            if missing:
                copy._api_problem = (
                    f"node `{node.id}`: API `{api.name}` needs parameter `{missing[0]}`"
                )
                break
            copy._apis[api.id] = api.snapshot()
        return copy

    async def _check_apis(self, user_id: str, definition: WorkflowDefinition) -> None:
        """Each API an API_CALL names exists (for this user) and gets the parameters its path
        needs: a 400 naming the node otherwise."""
        for node, config in _api_calls(definition):
            assert config.api_id is not None
            api = await self._apis.find(user_id, config.api_id)
            if api is None:
                raise invalid_param(
                    f"node `{node.id}`: config.api_id: no API `{config.api_id}` (register it "
                    "with POST /api/apis)"
                )
            missing = missing_parameters(api, config.parameters)
            if missing:
                raise invalid_param(
                    f"node `{node.id}`: config.parameters: API `{api.name}` needs "
                    f"`{missing[0]}` (its path is {api.path!r})"
                )

    async def versions(
        self, user_id: str, workflow_id: str, page: int = 1, size: int = 20
    ) -> tuple[list[WorkflowRecord], int]:
        """One page of the kept versions, newest first, and how many are kept: only the page's
        records are read (superseded versions are not held in memory)."""
        latest = await self._latest(user_id, workflow_id)
        oldest = self._oldest_kept(latest)
        stored = {
            int(key.rsplit(".v", 1)[1])
            for key in await self._cache.keys_matching(f"{workflow_id}.*")
            if re.fullmatch(rf"{re.escape(workflow_id)}\.v\d+", key)
        }
        numbers = [latest.version, *sorted((n for n in stored if n >= oldest), reverse=True)]
        wanted = numbers[(page - 1) * size : page * size]

        async def read(number: int) -> WorkflowRecord | None:
            if number == latest.version:
                return latest
            return await self._cache.get(_version_key(workflow_id, number))

        records = await asyncio.gather(*(read(n) for n in wanted))
        return [r for r in records if r is not None], len(numbers)

    async def create(
        self, user_id: str, definition: WorkflowDefinition, allow_draft: bool = False
    ) -> WorkflowRecord:
        # A workflow created without nodes is one to build step by step: a draft.
        allow_draft = allow_draft or "nodes" not in definition.model_fields_set
        definition = await self._secrets_resolved(user_id, definition)
        problems = await self._assess(definition, allow_draft)
        await self._check_apis(user_id, definition)
        now = int(time.time())
        record = WorkflowRecord(
            id=str(uuid.uuid4()),
            user_id=user_id,
            version=1,
            definition=definition,
            created_at=now,
            updated_at=now,
            problems=problems,
        )
        await self._put(record.id, record)
        return record

    async def replace(
        self,
        user_id: str,
        workflow_id: str,
        definition: WorkflowDefinition,
        allow_draft: bool = False,
    ) -> WorkflowRecord:
        """A new version; the same definition again changes nothing (PUT is idempotent)."""
        await self._latest(user_id, workflow_id)  # 404 before any work
        definition = await self._secrets_resolved(user_id, definition)
        problems = await self._assess(definition, allow_draft)
        async with self._writing(workflow_id):
            latest = await self._latest(user_id, workflow_id)
            await self._check_apis(user_id, definition)
            if definition == latest.definition:
                return latest
            return await self._supersede(latest, definition, problems)

    async def patch(self, user_id: str, workflow_id: str, body: dict[str, Any]) -> WorkflowRecord:
        """The workflow's own fields (name, description, `is_active`, …) changed, its graph
        kept: a new version, a draft if the graph is one."""
        async with self._writing(workflow_id):
            latest = await self._latest(user_id, workflow_id)
            definition = edits.patched(latest.definition, body)
            if definition == latest.definition:
                return latest
            problems = await self._assess(definition, latest.draft)
            return await self._supersede(latest, definition, problems)

    async def add_node(self, user_id: str, workflow_id: str, node: Node) -> WorkflowRecord:
        return await self._edit(user_id, workflow_id, lambda d: edits.with_item(d, "nodes", node))

    async def update_node(
        self, user_id: str, workflow_id: str, node_id: str, changes: dict[str, Any]
    ) -> WorkflowRecord:
        return await self._edit(
            user_id, workflow_id, lambda d: edits.replace_node(d, node_id, changes)
        )

    async def delete_node(self, user_id: str, workflow_id: str, node_id: str) -> WorkflowRecord:
        return await self._edit(user_id, workflow_id, lambda d: edits.without_node(d, node_id))

    async def add_connection(
        self, user_id: str, workflow_id: str, connection: Connection
    ) -> WorkflowRecord:
        return await self._edit(
            user_id, workflow_id, lambda d: edits.with_item(d, "connections", connection)
        )

    async def update_connection(
        self, user_id: str, workflow_id: str, key: str, changes: dict[str, Any]
    ) -> tuple[WorkflowRecord, Connection]:
        changed: list[Connection] = []

        def change(definition: WorkflowDefinition) -> WorkflowDefinition:
            updated, connection = edits.replace_connection(definition, key, changes)
            changed.append(connection)
            return updated

        record = await self._edit(user_id, workflow_id, change)
        return record, changed[0]

    async def delete_connection(self, user_id: str, workflow_id: str, key: str) -> WorkflowRecord:
        return await self._edit(user_id, workflow_id, lambda d: edits.without_connection(d, key))

    async def _edit(
        self,
        user_id: str,
        workflow_id: str,
        change: Callable[[WorkflowDefinition], WorkflowDefinition],
    ) -> WorkflowRecord:
        """One step of building a graph: always storable as a draft."""
        async with self._writing(workflow_id):
            latest = await self._latest(user_id, workflow_id)
            definition = await self._secrets_resolved(user_id, change(latest.definition))
            problems = await self._assess(definition, True)
            await self._check_apis(user_id, definition)
            return await self._supersede(latest, definition, problems)

    async def delete(self, user_id: str, workflow_id: str) -> None:
        async with self._writing(workflow_id):
            await self._latest(user_id, workflow_id)
            await self._cache.delete(workflow_id)
            versions = await self._cache.keys_matching(f"{workflow_id}.*")
            await asyncio.gather(*(self._cache.delete(key) for key in versions))

    def search(self, user_id: str, tag: str | None, query: str | None) -> list[WorkflowRecord]:
        """The caller's workflows (latest versions), newest first."""
        needle = query.lower() if query else None
        found = [
            r
            for key, r in self._cache.items()
            if key == r.id
            and r.user_id == user_id
            and (tag is None or tag in r.definition.tags)
            and (
                needle is None
                or needle in r.definition.name.lower()
                or needle in r.definition.description.lower()
            )
        ]
        found.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        return found

    async def _supersede(
        self, latest: WorkflowRecord, definition: WorkflowDefinition, problems: list[str]
    ) -> WorkflowRecord:
        record = latest.model_copy(
            update={
                "version": latest.version + 1,
                "definition": definition,
                "problems": problems,
                "updated_at": int(time.time()),
            }
        )
        await self._put(_version_key(latest.id, latest.version), latest)
        await self._put(latest.id, record)
        pruned = record.version - self.limits.max_versions
        if pruned >= 1:
            await self._cache.delete(_version_key(latest.id, pruned))
        return record

    async def _put(self, key: str, record: WorkflowRecord) -> None:
        await self._cache.put(key, record, record.model_dump_json(by_alias=True).encode())
